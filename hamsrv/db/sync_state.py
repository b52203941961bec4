"""The SQL of `sync_state`: one row per sync job (its health, the owner for per-user jobs, a cursor and
free-form details), and the advisory locks that keep a job to one node at a time."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from hamsrv.db.database import Database, Row, execute_on, fetch_on, jsonb
from hamsrv.db.trio_pg import TrioConnection


async def get(db: Database, name: str, columns: Sequence[str]) -> Row | None:
    """`name` and `columns` of the job's row."""
    return await db.fetchrow(f"SELECT name, {', '.join(columns)} FROM sync_state WHERE name = %s", [name])


async def visible_to(db: Database, owner_id: int | None, columns: Sequence[str]) -> list[Row]:
    """The shared jobs and those of `owner_id`, shared ones first."""
    return await db.fetch(
        f"SELECT name, {', '.join(columns)} FROM sync_state"
        " WHERE owner_id IS NULL OR owner_id = %s ORDER BY owner_id NULLS FIRST, name", [owner_id])


async def put(db: Database, name: str, values: dict[str, Any]) -> None:
    """Store `values` (column -> value) for the job, creating its row when missing."""
    columns = list(values)
    await db.execute(
        f"INSERT INTO sync_state (name, {', '.join(columns)}) VALUES (%s{', %s' * len(columns)})"
        f" ON CONFLICT (name) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in columns)}",
        [name, *values.values()])


async def add_missing(db: Database, name: str, status: str, owner_id: int | None) -> None:
    """A row for a new job, unless one exists (another node may have stored it meanwhile)."""
    await db.execute("INSERT INTO sync_state (name, status, owner_id) VALUES (%s, %s, %s)"
                     " ON CONFLICT (name) DO NOTHING", [name, status, owner_id])


async def delete(db: Database, name: str) -> None:
    await db.execute("DELETE FROM sync_state WHERE name = %s", [name])


async def details(db: Database, name: str) -> dict[str, Any]:
    row = await db.fetchrow("SELECT details FROM sync_state WHERE name = %s", [name])
    return dict(row["details"]) if row else {}


async def save_details(db: Database, name: str, details: dict[str, Any]) -> None:
    await db.execute("INSERT INTO sync_state (name, details) VALUES (%s, %s)"
                     " ON CONFLICT (name) DO UPDATE SET details = EXCLUDED.details", [name, jsonb(details)])


async def try_lock(conn: TrioConnection, key: Sequence[int]) -> bool:
    """A session advisory lock on `conn` (two ints), or False when another session holds it."""
    rows = await fetch_on(conn, "SELECT pg_try_advisory_lock(%s, %s) AS got", key)
    return bool(rows[0]["got"])


async def unlock(conn: TrioConnection, key: Sequence[int]) -> None:
    await execute_on(conn, "SELECT pg_advisory_unlock(%s, %s)", key)


async def cursor(db: Database, name: str) -> str | None:
    """Where the job resumes (a service's own position, such as LoTW's last QSL date)."""
    row = await db.fetchrow("SELECT cursor FROM sync_state WHERE name = %s", [name])
    return row["cursor"] if row else None


async def save_cursor(conn: TrioConnection, name: str, owner_id: int | None, cursor: str | None,
                      details: dict[str, Any]) -> None:
    await execute_on(
        conn, "INSERT INTO sync_state (name, owner_id, cursor, details) VALUES (%s, %s, %s, %s::jsonb)"
        " ON CONFLICT (name) DO UPDATE SET cursor = EXCLUDED.cursor, details = EXCLUDED.details",
        [name, owner_id, cursor, json.dumps(details)])


async def restart(conn: TrioConnection, name: str, *, keep_cursor: bool) -> None:
    """Clear the job's failures and run it now; the cursor starts over unless `keep_cursor`."""
    await execute_on(conn, "UPDATE sync_state SET failures = 0, error = NULL, next_run_at = now(),"
                           " cursor = CASE WHEN %s THEN cursor END WHERE name = %s", [keep_cursor, name])


async def delete_on(conn: TrioConnection, name: str) -> None:
    """delete() inside the caller's transaction."""
    await execute_on(conn, "DELETE FROM sync_state WHERE name = %s", [name])
