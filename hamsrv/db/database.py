"""The database service: where the server is, the pool, migrations, and small query helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
import trio
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from hamsrv.db.embedded import start_embedded
from hamsrv.db.errors import translate, translated
from hamsrv.db.migrate import migrate
from hamsrv.db.pool import Pool
from hamsrv.db.trio_pg import TrioConnection
from hamsrv.errors import DatabaseError

Row = dict[str, Any]


class Database:
    def __init__(self, pool: Pool):
        self.pool = pool

    @classmethod
    async def open(cls, url: str | None, data_dir: Path, *, pool_size: int = 10,
                   run_migrations: bool = True) -> Database:
        """Connect (starting the embedded server when `url` is None) and bring the schema up to date."""
        conninfo = url or await start_embedded(data_dir)
        pool = Pool(conninfo, max_size=pool_size)
        try:
            await pool.open()
            if run_migrations:
                await migrate(pool)
        except BaseException:
            await pool.close()
            raise
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[TrioConnection]:
        async with self.pool.connection() as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[TrioConnection]:
        """A connection in a transaction; BEGIN and COMMIT errors come out as DatabaseError too."""
        async with self.pool.connection() as conn:
            with translated():
                async with conn.transaction():
                    yield conn

    async def fetch(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
        async with self.pool.connection() as conn:
            return await fetch_on(conn, sql, params)

    async def fetchrow(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Row | None:
        rows = await self.fetch(sql, params)
        return rows[0] if rows else None

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run a statement; returns the number of rows it touched."""
        async with self.pool.connection() as conn:
            try:
                cur = await conn.execute(sql, params)  # type: ignore[arg-type]
            except psycopg.Error as exc:
                raise translate(exc) from None
            return cur.rowcount

    async def ping(self, timeout: float = 2.0) -> bool:
        """True when the database answers a trivial query within `timeout` seconds."""
        with trio.move_on_after(timeout):
            try:
                await self.fetch("SELECT 1")
                return True
            except DatabaseError:
                return False
        return False


async def execute_on(conn: TrioConnection, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
    """execute() on a connection the caller holds; returns the number of rows touched."""
    with translated():
        cur = await conn.execute(sql, params)  # type: ignore[arg-type]
        return cur.rowcount


async def fetch_on(conn: TrioConnection, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
    """fetch() on a connection the caller holds (inside a transaction)."""
    try:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(sql, params)  # type: ignore[arg-type]
        return await cur.fetchall() if cur.description else []
    except psycopg.Error as exc:
        raise translate(exc) from None


def jsonb(value: Any) -> Any:
    """A Python value (dict, list) to bind to a jsonb parameter."""
    return Jsonb(value)


def json_value(value: Any) -> Any:
    """A column value as JSON: times in UTC ISO 8601 with `Z`, dates ISO, the rest as is."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def conninfo_url(conninfo: str) -> str:
    """A postgresql:// URL (as HAMSRV_DATABASE_URL takes) for a URL or a key=value conninfo string."""
    if conninfo.startswith(("postgresql://", "postgres://")):
        return conninfo
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    dbname = str(params.pop("dbname", ""))
    return f"postgresql:///{quote(dbname)}?" + urlencode({k: str(v) for k, v in params.items()})
