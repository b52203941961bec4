"""The SQL of pending sign-ins (`signin_codes`): one row per callsign and method, its tries counted in
the same statement that reads the secret's hash, so parallel guesses cannot exceed them."""

from __future__ import annotations

from datetime import timedelta

from hamsrv.db.database import Database, Row


async def put(db: Database, callsign: str, method: str, salt: bytes, digest: bytes, public_code: str | None,
              ttl: timedelta) -> None:
    """Replaces the callsign's pending sign-in of the same method (and its tries)."""
    await db.execute(
        "INSERT INTO signin_codes (callsign, method, salt, secret_sha256, public_code, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, now() + %s) ON CONFLICT (callsign, method) DO UPDATE SET"
        " salt = excluded.salt, secret_sha256 = excluded.secret_sha256, public_code = excluded.public_code,"
        " tries = 0, created_at = now(), expires_at = excluded.expires_at",
        [callsign, method, salt, digest, public_code, ttl])


async def take_try(db: Database, callsign: str, method: str, max_tries: int) -> Row | None:
    """Spends one try of a live sign-in with tries left: its salt, hash, public code and tries; else None."""
    return await db.fetchrow(
        "UPDATE signin_codes SET tries = tries + 1 WHERE callsign = %s AND method = %s"
        " AND expires_at > now() AND tries < %s RETURNING salt, secret_sha256, public_code, tries",
        [callsign, method, max_tries])


async def pending(db: Database, callsign: str, method: str) -> Row | None:
    """`tries` and `live` of the callsign's sign-in, None when there is none."""
    return await db.fetchrow("SELECT tries, expires_at > now() AS live FROM signin_codes"
                             " WHERE callsign = %s AND method = %s", [callsign, method])


async def give_back_try(db: Database, callsign: str, method: str) -> None:
    await db.execute("UPDATE signin_codes SET tries = tries - 1 WHERE callsign = %s AND method = %s",
                     [callsign, method])


async def delete(db: Database, callsign: str, method: str) -> None:
    await db.execute("DELETE FROM signin_codes WHERE callsign = %s AND method = %s", [callsign, method])
