"""QSO queries, always scoped to the owner: another user's QSO simply does not exist (404, not 403)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from hamsrv.db.database import Database, Row, jsonb

PAGE_MAX = 1000
# Writers lock their owner row (what a foreign key check would do, once per statement instead of per row),
# so a user deleted meanwhile cannot be left with QSOs: see migration 0003.
LOCK_OWNER = "SELECT id FROM users WHERE id = %s FOR KEY SHARE"


def _adapt(value: Any) -> Any:
    return jsonb(value) if isinstance(value, dict) else value


async def insert(db: Database, owner_id: int, row: dict[str, Any]) -> Row | None:
    """Insert one QSO; None when it duplicates an existing one (same call, band, mode, minute)."""
    cols = list(row)
    sql = (f"INSERT INTO qsos (owner_id, {', '.join(cols)})"
           f" SELECT id, {', '.join(['%s'] * len(cols))} FROM ({LOCK_OWNER}) owner"
           " ON CONFLICT DO NOTHING RETURNING *")
    return await db.fetchrow(sql, [*(_adapt(row[c]) for c in cols), owner_id])


async def find_duplicate(db: Database, owner_id: int, row: dict[str, Any]) -> Row | None:
    return await db.fetchrow(
        "SELECT * FROM qsos WHERE owner_id = %s AND call = %s AND coalesce(band, '') = coalesce(%s, '')"
        " AND coalesce(mode, '') = coalesce(%s, '')"
        " AND start_minute = date_trunc('minute', %s::timestamptz AT TIME ZONE 'UTC')",
        [owner_id, row["call"], row.get("band"), row.get("mode"), row["start_at"]])


async def get(db: Database, owner_id: int, qso_id: int) -> Row | None:
    return await db.fetchrow("SELECT * FROM qsos WHERE owner_id = %s AND id = %s", [owner_id, qso_id])


async def replace(db: Database, owner_id: int, qso_id: int, row: dict[str, Any]) -> Row | None:
    cols = list(row)
    sql = (f"UPDATE qsos SET {', '.join(f'{c} = %s' for c in cols)}, updated_at = now()"
           " WHERE owner_id = %s AND id = %s RETURNING *")
    return await db.fetchrow(sql, [*(_adapt(row[c]) for c in cols), owner_id, qso_id])


async def delete(db: Database, owner_id: int, qso_id: int) -> bool:
    return await db.execute("DELETE FROM qsos WHERE owner_id = %s AND id = %s", [owner_id, qso_id]) == 1


async def oldest_first(db: Database, owner_id: int, after: tuple[datetime, int], limit: int) -> list[Row]:
    """The page of QSOs following `after` = (start_at, id), oldest first (keyset paging, for export).
    start_minute leads the ordering so the dedupe index (owner_id, start_minute, ...) serves the scan."""
    return await db.fetch(
        "SELECT * FROM qsos WHERE owner_id = %s AND start_minute >= date_trunc('minute', %s AT TIME ZONE 'UTC')"
        " AND (start_at, id) > (%s, %s) ORDER BY start_minute, start_at, id LIMIT %s",
        [owner_id, after[0], *after, limit])


async def search(db: Database, owner_id: int, *, call: str | None = None, band: str | None = None,
                 mode: str | None = None, since: datetime | None = None, until: datetime | None = None,
                 before: tuple[datetime, int] | None = None, limit: int = 100) -> list[Row]:
    """Newest first; `before` is the (start_at, id) of the last row of the previous page (keyset paging)."""
    where: list[str] = ["owner_id = %s"]
    params: list[Any] = [owner_id]
    filters: Sequence[tuple[str, Any]] = (
        ("call = %s", call), ("band = %s", band), ("mode = %s", mode),
        ("start_at >= %s", since), ("start_at < %s", until))
    for clause, value in filters:
        if value is not None:
            where.append(clause)
            params.append(value)
    if before is not None:
        where.append("(start_at, id) < (%s, %s) AND start_minute <= date_trunc('minute', %s AT TIME ZONE 'UTC')")
        params.extend([*before, before[0]])
    params.append(min(limit, PAGE_MAX))
    # start_minute leads the ordering so the dedupe index (owner_id, start_minute, ...) serves the scan.
    return await db.fetch(f"SELECT * FROM qsos WHERE {' AND '.join(where)}"
                          " ORDER BY start_minute DESC, start_at DESC, id DESC LIMIT %s", params)
