"""Idempotency-Key records (IETF draft-ietf-httpapi-idempotency-key-header): one row per user and key
holding the request's fingerprint and, once answered, the first answer. Rows live a day."""

from __future__ import annotations

from datetime import timedelta

from hamsrv.db import idempotency as keys
from hamsrv.db.database import Database, Row

# A claim whose request never answered (the process died between the two statements) frees the key
# after this long; a request still running then is the import upload, which its job's own key guards.
ABANDONED = timedelta(hours=1)


async def claim(db: Database, user_id: int, key: str, fingerprint: bytes) -> Row | None:
    """None when this request may run (the key is now taken by it); else the row recorded for the key
    (`status` None while its first request still runs)."""
    if await keys.take(db, user_id, key, fingerprint, ABANDONED):
        return None
    row = await keys.get(db, user_id, key)
    if row is None:  # released between the two statements: try once more
        return await claim(db, user_id, key, fingerprint)
    return row


async def record(db: Database, user_id: int, key: str, status: int, content_type: str | None,
                 location: str | None, body: bytes) -> None:
    await keys.set_answer(db, user_id, key, status, content_type, location, body)


async def release(db: Database, user_id: int, key: str) -> None:
    """Forget a claim whose request failed, so that a retry runs it again."""
    await keys.delete_unanswered(db, user_id, key)
