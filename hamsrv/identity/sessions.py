"""Accounts' trust levels and roles, and sign-in sessions. A session token is shown once (cookie and
JSON); only its SHA-256 is stored, like API tokens."""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

import trio

from hamsrv.db.database import Database, Row
from hamsrv.errors import DatabaseError, InputError
from hamsrv.model import normalize_call

log = logging.getLogger(__name__)

SESSION_PREFIX = "hamsess_"
COOKIE = "hamsrv_session"

# What each sign-in path proves about the callsign (README "Sign-in and trust").
TRUST_NAMES = {0: "none", 1: "low", 2: "medium", 3: "high"}
TRUST_LEVELS = {name: level for level, name in TRUST_NAMES.items()}
METHOD_TRUST = {"qrz": 1, "email": 2, "lotw": 3}
ROLES = ("user", "admin")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def trust_level(name: str) -> int:
    if name not in TRUST_LEVELS:
        raise InputError(f"trust must be one of {', '.join(TRUST_LEVELS)}", field="trust")
    return TRUST_LEVELS[name]


async def ensure_user(db: Database, callsign: str, trust: int) -> Row:
    """The account for `callsign`, created when missing; its trust is raised to `trust`, never lowered."""
    call = normalize_call(callsign)
    if call is None:
        raise InputError(f"{callsign!r} is not a callsign", field="callsign")
    row = await db.fetchrow(
        "INSERT INTO users (callsign, trust_level) VALUES (%s, %s) ON CONFLICT (callsign)"
        " DO UPDATE SET trust_level = greatest(users.trust_level, excluded.trust_level) RETURNING *",
        [call, trust])
    assert row is not None
    return row


async def set_role(db: Database, callsign: str, role: str) -> Row | None:
    """Make the user an admin (`role` "admin") or a plain user again ("user"); None: no such user."""
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}", field="role")
    roles = ["admin"] if role == "admin" else []
    return await db.fetchrow("UPDATE users SET roles = %s WHERE callsign = %s RETURNING *",
                             [roles, callsign.strip().upper()])


async def set_trust(db: Database, callsign: str, trust: int) -> Row | None:
    """The operator's override (`hamsrv user trust`): may also lower the level."""
    return await db.fetchrow("UPDATE users SET trust_level = %s WHERE callsign = %s RETURNING *",
                             [trust, callsign.strip().upper()])


async def start_session(db: Database, user_id: int, method: str, ip: str | None,
                        lifetime: timedelta) -> str:
    """A new session token for the user, as trusted as `method` proves."""
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
    await db.execute(
        "INSERT INTO sessions (user_id, token_sha256, trust_level, method, ip, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, now() + %s)",
        [user_id, _digest(token), METHOD_TRUST[method], method, ip, lifetime])
    return token


async def user_for_session(db: Database, token: str) -> Row | None:
    """The user row of a live session, with the session's `trust`, `session_id`, `method` and
    `expires_at`; None for an unknown or expired token."""
    if not token.startswith(SESSION_PREFIX) or len(token) > 200:
        return None
    user = await db.fetchrow(
        "SELECT u.*, s.id AS session_id, s.trust_level AS trust, s.method, s.expires_at,"
        " s.last_seen_at < now() - interval '1 minute' AS stale"
        " FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.token_sha256 = %s AND s.expires_at > now()", [_digest(token)])
    if user is None:
        return None
    if user.pop("stale"):  # to the minute: one write a minute per session, not one per request
        await db.execute("UPDATE sessions SET last_seen_at = now() WHERE id = %s", [user["session_id"]])
    user["trust"] = min(user["trust"], user["trust_level"])  # the operator may have lowered the account
    return user


async def end_session(db: Database, session_id: int) -> None:
    await db.execute("DELETE FROM sessions WHERE id = %s", [session_id])


async def end_all_sessions(db: Database, user_id: int) -> int:
    """Log out everywhere: every session of the user ends (API tokens for scripts stay)."""
    return await db.execute("DELETE FROM sessions WHERE user_id = %s", [user_id])


async def sweep_expired(db: Database, every: float = 3600.0) -> None:
    """Forever: delete_expired() once an hour (a failure waits for the next round)."""
    while True:
        await trio.sleep(every)
        try:
            await delete_expired(db)
        except DatabaseError as exc:
            log.warning("deleting expired sessions failed: %s", exc)


async def delete_expired(db: Database) -> int:
    """Drop ended sessions, sign-in codes and day-old idempotency records (run now and then)."""
    n = await db.execute("DELETE FROM sessions WHERE expires_at < now()")
    n += await db.execute("DELETE FROM signin_codes WHERE expires_at < now()")
    n += await db.execute("DELETE FROM idempotency_keys WHERE created_at < now() - interval '1 day'")
    return n
