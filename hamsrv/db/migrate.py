"""Schema migrations: numbered SQL files applied in order, once, under an advisory lock.

The lock makes concurrent starts (several nodes, or a CLI beside a running server) safe: the second
waits, then finds nothing left to do.
"""

from __future__ import annotations

import re
from importlib import resources

import psycopg

from hamsrv.db.errors import translate
from hamsrv.db.pool import Pool

_LOCK_KEY = 0x68616D73  # "hams": any constant shared by every hamsrv process
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def available() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every migration shipped with hamsrv, in order."""
    found = []
    for item in resources.files("hamsrv.db.migrations").iterdir():
        m = _NAME.match(item.name)
        if m:
            found.append((int(m.group(1)), item.name, item.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers: {versions}")
    return found


async def migrate(pool: Pool) -> list[str]:
    """Apply pending migrations; returns the names applied now (empty when up to date)."""
    try:
        return await _migrate(pool)
    except psycopg.Error as exc:  # e.g. no CREATE permission on the schema of an external database
        raise translate(exc) from None


async def _migrate(pool: Pool) -> list[str]:
    applied_now: list[str] = []
    async with pool.connection() as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", [_LOCK_KEY])
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())")
            cur = await conn.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cur.fetchall()}
            for version, name, sql in available():
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql.encode())
                    await conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                                       [version, name])
                applied_now.append(name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_KEY])
    return applied_now
