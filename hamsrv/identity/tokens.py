"""Users and their API tokens. A token is shown once; only its SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets

from hamsrv.db import accounts
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
        row = await accounts.insert_user(db, call, email)
    except UniqueViolation:
        raise InputError(f"user {call} exists already", field="callsign") from None
    assert row is not None
    return row


async def get_user(db: Database, callsign: str) -> Row | None:
    return await accounts.user_by_call(db, callsign.strip().upper())


async def issue_token(db: Database, user_id: int, name: str = "") -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    await accounts.insert_token(db, user_id, _digest(token), name)
    return token


async def user_for_token(db: Database, token: str) -> Row | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    user = await accounts.user_for_token_digest(db, _digest(token))
    if user is None:
        return None
    token_id, stale = user.pop("token_id"), user.pop("stale")
    if stale:  # last use to the minute: one write a minute per token, not one per request
        await accounts.touch_token(db, token_id)
    return user


async def list_users(db: Database) -> list[Row]:
    """Every user with its number of tokens and QSOs (for `hamsrv user list`)."""
    return await accounts.users_with_counts(db)


async def delete_user(db: Database, callsign: str) -> bool:
    """Delete a user with its tokens, QSOs and import jobs."""
    return await accounts.delete_user(db, callsign.strip().upper())


async def list_tokens(db: Database, user_id: int) -> list[Row]:
    return await accounts.tokens_of(db, user_id)


async def revoke_token(db: Database, user_id: int, token_id: int) -> bool:
    return await accounts.delete_token(db, user_id, token_id)
