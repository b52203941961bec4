"""Users and their API tokens. A token is shown once; only its SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets

from hamsrv.db.database import Database, Row
from hamsrv.db.errors import UniqueViolation
from hamsrv.errors import InputError
from hamsrv.model import normalize_call

TOKEN_PREFIX = "hamsrv_"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def add_user(db: Database, callsign: str, email: str | None = None) -> Row:
    call = normalize_call(callsign)
    if call is None:
        raise InputError(f"{callsign!r} is not a callsign", field="callsign")
    try:
        row = await db.fetchrow("INSERT INTO users (callsign, email) VALUES (%s, %s) RETURNING *",
                                [call, email])
    except UniqueViolation:
        raise InputError(f"user {call} exists already", field="callsign") from None
    assert row is not None
    return row


async def get_user(db: Database, callsign: str) -> Row | None:
    return await db.fetchrow("SELECT * FROM users WHERE callsign = %s", [callsign.strip().upper()])


async def issue_token(db: Database, user_id: int, name: str = "") -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    await db.execute("INSERT INTO api_tokens (user_id, token_sha256, name) VALUES (%s, %s, %s)",
                     [user_id, _digest(token), name])
    return token


async def user_for_token(db: Database, token: str) -> Row | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    user = await db.fetchrow(
        "SELECT u.*, t.id AS token_id, coalesce(t.last_used_at < now() - interval '1 minute', true) AS stale"
        " FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_sha256 = %s", [_digest(token)])
    if user is None:
        return None
    token_id, stale = user.pop("token_id"), user.pop("stale")
    if stale:  # last use to the minute: one write a minute per token, not one per request
        await db.execute("UPDATE api_tokens SET last_used_at = now() WHERE id = %s", [token_id])
    return user


async def list_users(db: Database) -> list[Row]:
    """Every user with its number of tokens and QSOs (for `hamsrv user list`)."""
    return await db.fetch(
        "SELECT u.id, u.callsign, u.email, u.created_at, u.share_qsos,"
        " (SELECT count(*) FROM api_tokens t WHERE t.user_id = u.id) AS tokens,"
        " (SELECT count(*) FROM qsos q WHERE q.owner_id = u.id) AS qsos"
        " FROM users u ORDER BY u.callsign")


async def delete_user(db: Database, callsign: str) -> bool:
    """Delete a user with its tokens, QSOs and import jobs."""
    return await db.execute("DELETE FROM users WHERE callsign = %s", [callsign.strip().upper()]) == 1


async def list_tokens(db: Database, user_id: int) -> list[Row]:
    return await db.fetch("SELECT id, name, created_at, last_used_at FROM api_tokens WHERE user_id = %s"
                          " ORDER BY id", [user_id])


async def revoke_token(db: Database, user_id: int, token_id: int) -> bool:
    return await db.execute("DELETE FROM api_tokens WHERE user_id = %s AND id = %s", [user_id, token_id]) == 1
