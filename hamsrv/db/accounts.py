"""The SQL of accounts: users, their API tokens, sign-in sessions and cluster passwords.

Tokens and sessions are looked up by the SHA-256 of the secret (identity/ computes it); the rules about
what a sign-in proves live in identity/, the statements here.
"""

from __future__ import annotations

from datetime import timedelta

from hamsrv.db.database import Database, Row

# ---- users

async def insert_user(db: Database, callsign: str, email: str | None) -> Row | None:
    return await db.fetchrow("INSERT INTO users (callsign, email) VALUES (%s, %s) RETURNING *", [callsign, email])


async def upsert_user_trust(db: Database, callsign: str, trust: int) -> Row | None:
    """The account for `callsign`, created when missing; its trust is raised to `trust`, never lowered."""
    return await db.fetchrow(
        "INSERT INTO users (callsign, trust_level) VALUES (%s, %s) ON CONFLICT (callsign)"
        " DO UPDATE SET trust_level = greatest(users.trust_level, excluded.trust_level) RETURNING *",
        [callsign, trust])


async def user_by_call(db: Database, callsign: str) -> Row | None:
    return await db.fetchrow("SELECT * FROM users WHERE callsign = %s", [callsign])


async def set_roles(db: Database, callsign: str, roles: list[str]) -> Row | None:
    return await db.fetchrow("UPDATE users SET roles = %s WHERE callsign = %s RETURNING *", [roles, callsign])


async def set_trust_level(db: Database, callsign: str, trust: int) -> Row | None:
    return await db.fetchrow("UPDATE users SET trust_level = %s WHERE callsign = %s RETURNING *", [trust, callsign])


async def set_share_qsos(db: Database, user_id: int, share: bool) -> Row | None:
    return await db.fetchrow("UPDATE users SET share_qsos = %s WHERE id = %s RETURNING *", [share, user_id])


async def users_with_counts(db: Database) -> list[Row]:
    """Every user with its number of tokens and QSOs (for `hamsrv user list`)."""
    return await db.fetch(
        "SELECT u.id, u.callsign, u.email, u.created_at, u.share_qsos,"
        " (SELECT count(*) FROM api_tokens t WHERE t.user_id = u.id) AS tokens,"
        " (SELECT count(*) FROM qsos q WHERE q.owner_id = u.id) AS qsos"
        " FROM users u ORDER BY u.callsign")


async def callsigns(db: Database) -> list[str]:
    return [row["callsign"] for row in await db.fetch("SELECT callsign FROM users")]


async def users_for_admin(db: Database) -> list[Row]:
    return await db.fetch("SELECT callsign, trust_level, roles, created_at FROM users ORDER BY callsign")


async def delete_user(db: Database, callsign: str) -> bool:
    """Deletes the user with its tokens, QSOs and import jobs (the foreign keys cascade)."""
    return await db.execute("DELETE FROM users WHERE callsign = %s", [callsign]) == 1


# ---- API tokens

async def insert_token(db: Database, user_id: int, digest: bytes, name: str) -> None:
    await db.execute("INSERT INTO api_tokens (user_id, token_sha256, name) VALUES (%s, %s, %s)",
                     [user_id, digest, name])


async def user_for_token_digest(db: Database, digest: bytes) -> Row | None:
    """The token's user row plus `token_id` and `stale` (last use over a minute ago, or never)."""
    return await db.fetchrow(
        "SELECT u.*, t.id AS token_id, coalesce(t.last_used_at < now() - interval '1 minute', true) AS stale"
        " FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_sha256 = %s", [digest])


async def touch_token(db: Database, token_id: int) -> None:
    await db.execute("UPDATE api_tokens SET last_used_at = now() WHERE id = %s", [token_id])


async def tokens_of(db: Database, user_id: int) -> list[Row]:
    return await db.fetch("SELECT id, name, created_at, last_used_at FROM api_tokens WHERE user_id = %s"
                          " ORDER BY id", [user_id])


async def delete_token(db: Database, user_id: int, token_id: int) -> bool:
    return await db.execute("DELETE FROM api_tokens WHERE user_id = %s AND id = %s", [user_id, token_id]) == 1


# ---- sign-in sessions

async def insert_session(db: Database, user_id: int, digest: bytes, trust: int, method: str, ip: str | None,
                         lifetime: timedelta) -> None:
    await db.execute(
        "INSERT INTO sessions (user_id, token_sha256, trust_level, method, ip, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, now() + %s)", [user_id, digest, trust, method, ip, lifetime])


async def user_for_session_digest(db: Database, digest: bytes) -> Row | None:
    """The live session's user row plus `session_id`, `trust`, `method`, `expires_at` and `stale`."""
    return await db.fetchrow(
        "SELECT u.*, s.id AS session_id, s.trust_level AS trust, s.method, s.expires_at,"
        " s.last_seen_at < now() - interval '1 minute' AS stale"
        " FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.token_sha256 = %s AND s.expires_at > now()", [digest])


async def touch_session(db: Database, session_id: int) -> None:
    await db.execute("UPDATE sessions SET last_seen_at = now() WHERE id = %s", [session_id])


async def delete_session(db: Database, session_id: int) -> None:
    await db.execute("DELETE FROM sessions WHERE id = %s", [session_id])


async def delete_sessions_of(db: Database, user_id: int) -> int:
    return await db.execute("DELETE FROM sessions WHERE user_id = %s", [user_id])


async def delete_expired(db: Database) -> int:
    """Drops ended sessions, sign-in codes and day-old idempotency records."""
    n = await db.execute("DELETE FROM sessions WHERE expires_at < now()")
    n += await db.execute("DELETE FROM signin_codes WHERE expires_at < now()")
    n += await db.execute("DELETE FROM idempotency_keys WHERE created_at < now() - interval '1 day'")
    return n


# ---- the cluster port password

async def cluster_login_row(db: Database, callsign: str) -> Row | None:
    return await db.fetchrow("SELECT cluster_password, trust_level FROM users WHERE callsign = %s", [callsign])


async def set_cluster_password(db: Database, user_id: int, stored: str | None) -> None:
    await db.execute("UPDATE users SET cluster_password = %s WHERE id = %s", [stored, user_id])
