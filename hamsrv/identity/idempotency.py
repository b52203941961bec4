"""Idempotency-Key records (IETF draft-ietf-httpapi-idempotency-key-header): one row per user and key
holding the request's fingerprint and, once answered, the first answer. Rows live a day."""

from __future__ import annotations

from hamsrv.db.database import Database, Row


async def claim(db: Database, user_id: int, key: str, fingerprint: bytes) -> Row | None:
    """None when this request may run (the key is now taken by it); else the row recorded for the key
    (`status` None while its first request still runs)."""
    await db.execute("DELETE FROM idempotency_keys WHERE user_id = %s AND key = %s"
                     " AND created_at < now() - interval '1 day'", [user_id, key])
    taken = await db.fetchrow("INSERT INTO idempotency_keys (user_id, key, fingerprint) VALUES (%s, %s, %s)"
                              " ON CONFLICT DO NOTHING RETURNING 1 AS ok", [user_id, key, fingerprint])
    if taken is not None:
        return None
    row = await db.fetchrow("SELECT * FROM idempotency_keys WHERE user_id = %s AND key = %s", [user_id, key])
    if row is None:  # released between the two statements: try once more
        return await claim(db, user_id, key, fingerprint)
    return row


async def record(db: Database, user_id: int, key: str, status: int, content_type: str | None,
                 location: str | None, body: bytes) -> None:
    await db.execute("UPDATE idempotency_keys SET status = %s, content_type = %s, location = %s, body = %s"
                     " WHERE user_id = %s AND key = %s", [status, content_type, location, body, user_id, key])


async def release(db: Database, user_id: int, key: str) -> None:
    """Forget a claim whose request failed, so that a retry runs it again."""
    await db.execute("DELETE FROM idempotency_keys WHERE user_id = %s AND key = %s AND status IS NULL",
                     [user_id, key])
