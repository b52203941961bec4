"""Accounts' trust levels and roles, and sign-in sessions. A session token is shown once (cookie and
JSON); only its SHA-256 is stored, like API tokens."""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

import trio

from hamsrv.db import accounts
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
    row = await accounts.upsert_user_trust(db, call, trust)
    assert row is not None
    return row


async def set_role(db: Database, callsign: str, role: str) -> Row | None:
    """Make the user an admin (`role` "admin") or a plain user again ("user"); None: no such user."""
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}", field="role")
    roles = ["admin"] if role == "admin" else []
    return await accounts.set_roles(db, callsign.strip().upper(), roles)


async def set_trust(db: Database, callsign: str, trust: int) -> Row | None:
    """The operator's override (`hamsrv user trust`): may also lower the level."""
    return await accounts.set_trust_level(db, callsign.strip().upper(), trust)


async def start_session(db: Database, user_id: int, method: str, ip: str | None,
                        lifetime: timedelta) -> str:
    """A new session token for the user, as trusted as `method` proves."""
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
    await accounts.insert_session(db, user_id, _digest(token), METHOD_TRUST[method], method, ip, lifetime)
    return token


async def user_for_session(db: Database, token: str) -> Row | None:
    """The user row of a live session, with the session's `trust`, `session_id`, `method` and
    `expires_at`; None for an unknown or expired token."""
    if not token.startswith(SESSION_PREFIX) or len(token) > 200:
        return None
    user = await accounts.user_for_session_digest(db, _digest(token))
    if user is None:
        return None
    if user.pop("stale"):  # to the minute: one write a minute per session, not one per request
        await accounts.touch_session(db, user["session_id"])
    user["trust"] = min(user["trust"], user["trust_level"])  # the operator may have lowered the account
    return user


async def end_session(db: Database, session_id: int) -> None:
    await accounts.delete_session(db, session_id)


async def end_all_sessions(db: Database, user_id: int) -> int:
    """Log out everywhere: every session of the user ends (API tokens for scripts stay)."""
    return await accounts.delete_sessions_of(db, user_id)


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
    return await accounts.delete_expired(db)
