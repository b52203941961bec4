"""Idempotency-Key records (IETF draft-ietf-httpapi-idempotency-key-header): one row per user and key
holding the request's fingerprint and, once answered, the first answer. Rows live a day."""

from __future__ import annotations

from datetime import timedelta

from hamsrv.db.database import Database, Row

# A claim whose request never answered (the process died between the two statements) frees the key
# after this long; a request still running then is the import upload, which its job's own key guards.
ABANDONED = timedelta(hours=1)


async def claim(db: Database, user_id: int, key: str, fingerprint: bytes) -> Row | None:
    """None when this request may run (the key is now taken by it); else the row recorded for the key
    (`status` None while its first request still runs)."""
    taken = await db.fetchrow(  # a new key, one recorded over a day ago, or a claim abandoned by a crash
        "INSERT INTO idempotency_keys (user_id, key, fingerprint) VALUES (%s, %s, %s)"
        " ON CONFLICT (user_id, key) DO UPDATE SET fingerprint = excluded.fingerprint, status = NULL,"
        " content_type = NULL, location = NULL, body = NULL, created_at = now()"
        " WHERE idempotency_keys.created_at < now() - interval '1 day' OR (idempotency_keys.status IS NULL"
        " AND idempotency_keys.created_at < now() - %s) RETURNING 1 AS ok",
        [user_id, key, fingerprint, ABANDONED])
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
