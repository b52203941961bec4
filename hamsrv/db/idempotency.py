"""The SQL of Idempotency-Key records (`idempotency_keys`): one row per user and key."""

from __future__ import annotations

from datetime import timedelta

from hamsrv.db.database import Database, Row


async def take(db: Database, user_id: int, key: str, fingerprint: bytes, abandoned: timedelta) -> bool:
    """Whether the key is now this request's: a new key, one recorded over a day ago, or a claim older
    than `abandoned` that never answered (its process died)."""
    return await db.fetchrow(
        "INSERT INTO idempotency_keys (user_id, key, fingerprint) VALUES (%s, %s, %s)"
        " ON CONFLICT (user_id, key) DO UPDATE SET fingerprint = excluded.fingerprint, status = NULL,"
        " content_type = NULL, location = NULL, body = NULL, created_at = now()"
        " WHERE idempotency_keys.created_at < now() - interval '1 day' OR (idempotency_keys.status IS NULL"
        " AND idempotency_keys.created_at < now() - %s) RETURNING 1 AS ok",
        [user_id, key, fingerprint, abandoned]) is not None


async def get(db: Database, user_id: int, key: str) -> Row | None:
    return await db.fetchrow("SELECT * FROM idempotency_keys WHERE user_id = %s AND key = %s", [user_id, key])


async def set_answer(db: Database, user_id: int, key: str, status: int, content_type: str | None,
                     location: str | None, body: bytes) -> None:
    await db.execute("UPDATE idempotency_keys SET status = %s, content_type = %s, location = %s, body = %s"
                     " WHERE user_id = %s AND key = %s", [status, content_type, location, body, user_id, key])


async def delete_unanswered(db: Database, user_id: int, key: str) -> None:
    await db.execute("DELETE FROM idempotency_keys WHERE user_id = %s AND key = %s AND status IS NULL",
                     [user_id, key])
