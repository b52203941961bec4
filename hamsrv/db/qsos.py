"""QSO queries, always scoped to the owner: another user's QSO simply does not exist (404, not 403)."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Search:
    """What GET /api/qsos filters by (None: no filter). `call` may hold `*` and `?` wildcards; `mode`
    matches MODE or SUBMODE; `grid` is a locator prefix; `qsl` maps status columns to a value."""

    call: str | None = None
    band: str | None = None
    mode: str | None = None
    dxcc: int | None = None
    grid: str | None = None
    qsl: tuple[tuple[str, str], ...] = ()
    confirmed: bool | None = None
    since: datetime | None = None
    until: datetime | None = None  # exclusive


QSL_COLUMNS = ("qsl_sent", "qsl_rcvd", "lotw_qsl_sent", "lotw_qsl_rcvd", "eqsl_qsl_sent", "eqsl_qsl_rcvd")
_CONFIRMED = "(qsl_rcvd = 'Y' OR lotw_qsl_rcvd = 'Y' OR eqsl_qsl_rcvd = 'Y')"


def _like(pattern: str) -> str:
    """A call pattern (letters, digits, '/', '*' and '?') as a LIKE pattern."""
    return pattern.replace("*", "%").replace("?", "_")


async def search(db: Database, owner_id: int, where: Search | None = None, *,
                 before: tuple[datetime, int] | None = None, limit: int = 100) -> list[Row]:
    """Newest first; `before` is the (start_at, id) of the last row of the previous page (keyset paging)."""
    where = where or Search()
    clauses: list[str] = ["owner_id = %s"]
    params: list[Any] = [owner_id]

    def add(clause: str, *values: Any) -> None:
        clauses.append(clause)
        params.extend(values)

    if where.call is not None:
        if "*" in where.call or "?" in where.call:
            add("call LIKE %s", _like(where.call))
        else:
            add("call = %s", where.call)
    if where.band is not None:
        add("band = %s", where.band)
    if where.mode is not None:
        add("(mode = %s OR submode = %s)", where.mode, where.mode)
    if where.dxcc is not None:
        add("dxcc = %s", where.dxcc)
    if where.grid is not None:
        add("upper(gridsquare) LIKE %s", where.grid.upper() + "%")
    for column, value in where.qsl:
        assert column in QSL_COLUMNS
        add(f"{column} = %s", value)
    if where.confirmed is not None:
        clauses.append(_CONFIRMED if where.confirmed else f"NOT coalesce({_CONFIRMED}, false)")
    if where.since is not None:
        add("start_at >= %s", where.since)
    if where.until is not None:
        add("start_at < %s", where.until)
    if before is not None:
        add("(start_at, id) < (%s, %s) AND start_minute <= date_trunc('minute', %s AT TIME ZONE 'UTC')",
            *before, before[0])
    params.append(min(limit, PAGE_MAX))
    # start_minute leads the ordering so the dedupe index (owner_id, start_minute, ...) serves the scan.
    return await db.fetch(f"SELECT * FROM qsos WHERE {' AND '.join(clauses)}"
                          " ORDER BY start_minute DESC, start_at DESC, id DESC LIMIT %s", params)
