"""The SQL of the FCC callbook: the raw ULS tables a zip is copied into, the weekly rebuild that swaps
`callbook_new` into place, the daily upsert, and the lookups.

The raw tables (fcc_en, fcc_am, fcc_hd) are temporary: they live on the one connection that loads a
zip, so every function here that touches them takes that connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from hamsrv.db.database import Database, Row, fetch_on
from hamsrv.db.errors import translated
from hamsrv.db.trio_pg import TrioConnection
from hamsrv.sync.uls import COLUMNS

RAW_TABLES = {"EN": "fcc_en", "AM": "fcc_am", "HD": "fcc_hd"}

CALLBOOK_COLUMNS = ("callsign", "usi", "name", "entity_name", "first_name", "middle_initial", "last_name",
                    "email", "street", "city", "state", "zip", "frn", "operator_class", "license_status",
                    "grant_date", "expire_date", "previous_call")


def _date(field: str) -> str:
    """mm/dd/yyyy to a date in SQL, NULL for anything else (never an error that would stop the import)."""
    return (f"CASE WHEN {field} ~ '^(0[1-9]|1[0-2])/(0[1-9]|[12][0-9]|3[01])/[1-9][0-9]{{3}}$' THEN "
            f"make_date(substr({field}, 7, 4)::int, substr({field}, 1, 2)::int, 1)"
            f" + (substr({field}, 4, 2)::int - 1) END")


# One row per callsign from the raw tables: the licensee entity (EN type L), the amateur data (AM) and
# the licence header (HD). When a callsign has several licences (an old one cancelled, a new one
# granted), the active one wins, then the latest grant.
LICENCES = f"""
SELECT DISTINCT ON (h.callsign) h.callsign, h.usi,
       coalesce(nullif(concat_ws(' ', e.first_name, e.middle_initial, e.last_name), ''), e.entity_name) AS name,
       e.entity_name, e.first_name, e.middle_initial, e.last_name, e.email, e.street, e.city, e.state, e.zip,
       e.frn, a.operator_class, h.license_status, {_date('h.grant_date')} AS grant_date,
       {_date('h.expire_date')} AS expire_date, a.previous_call
FROM fcc_hd h
LEFT JOIN fcc_en e ON e.usi = h.usi AND coalesce(e.entity_type, 'L') = 'L'
LEFT JOIN fcc_am a ON a.usi = h.usi
WHERE h.callsign <> ''
ORDER BY h.callsign, (h.license_status = 'A') DESC NULLS LAST, {_date('h.grant_date')} DESC NULLS LAST,
         h.usi DESC
"""


def raw_table_sql(kind: str) -> str:
    columns = ", ".join(f"{name} {'bigint' if name == 'usi' else 'text'}" for _, name in COLUMNS[kind])
    return f"CREATE TEMPORARY TABLE {RAW_TABLES[kind]} ({columns})"


def copy_sql(kind: str) -> str:
    columns = ", ".join(name for _, name in COLUMNS[kind])
    return f"COPY {RAW_TABLES[kind]} ({columns}) FROM STDIN (NULL '', ENCODING 'LATIN1')"


# ---- the raw tables

async def new_raw_tables(conn: TrioConnection) -> None:
    """Empty raw tables for the next zip."""
    with translated():
        for kind, table in RAW_TABLES.items():
            await conn.execute(f"DROP TABLE IF EXISTS pg_temp.{table}")
            await conn.execute(raw_table_sql(kind))


@asynccontextmanager
async def copy_raw(conn: TrioConnection, kind: str) -> AsyncIterator[Any]:
    """A COPY into the raw table of `kind` (EN, AM, HD): write() it the lines of that file."""
    async with conn.cursor().copy(copy_sql(kind)) as copy:
        yield copy


async def drop_raw(conn: TrioConnection) -> None:
    with translated():
        for table in RAW_TABLES.values():
            await conn.execute(f"DROP TABLE IF EXISTS pg_temp.{table}")


async def _analyze_raw(conn: TrioConnection) -> None:
    for table in RAW_TABLES.values():
        await conn.execute(f"ANALYZE {table}")


# ---- weekly: build and swap

async def build_new(conn: TrioConnection) -> int:
    """callbook_new from the raw tables, not yet indexed; the number of licences in it."""
    with translated():
        cols = ", ".join(CALLBOOK_COLUMNS)
        await conn.execute("DROP TABLE IF EXISTS callbook_new")
        await conn.execute("CREATE TABLE callbook_new (LIKE callbook INCLUDING DEFAULTS)")
        await _analyze_raw(conn)
        cur = await conn.execute(f"INSERT INTO callbook_new ({cols}) SELECT {cols} FROM ({LICENCES}) l")
        return cur.rowcount


async def index_and_swap(conn: TrioConnection) -> None:
    with translated():
        await conn.execute("ALTER TABLE callbook_new ADD CONSTRAINT callbook_new_pkey PRIMARY KEY (callsign)")
        await conn.execute("CREATE INDEX callbook_new_usi ON callbook_new (usi)")
        await conn.execute("ANALYZE callbook_new")
        await swap(conn)


async def swap(conn: TrioConnection) -> None:
    """Rename callbook_new into place. Lookups queue behind these renames only for their duration;
    lock_timeout keeps a long query on the old table from holding lookups behind us for long."""
    async with conn.transaction():
        await conn.execute("SET LOCAL lock_timeout = '5s'")
        for statement in ("ALTER TABLE callbook RENAME TO callbook_old",
                          "ALTER INDEX callbook_pkey RENAME TO callbook_old_pkey",
                          "ALTER INDEX callbook_usi RENAME TO callbook_old_usi",
                          "ALTER TABLE callbook_new RENAME TO callbook",
                          "ALTER INDEX callbook_new_pkey RENAME TO callbook_pkey",
                          "ALTER INDEX callbook_new_usi RENAME TO callbook_usi",
                          "DROP TABLE callbook_old"):
            await conn.execute(statement)


async def drop_new(conn: TrioConnection) -> None:
    """A rebuild that did not finish leaves no callbook_new behind."""
    with translated():
        await conn.execute("DROP TABLE IF EXISTS callbook_new")


# ---- daily: apply on the live table

async def apply_daily(conn: TrioConnection) -> int:
    """Upsert the licences of a daily file (raw tables loaded). A licence with a new callsign drops its
    old row; a cancelled old licence never overwrites the active licence holding the same callsign."""
    with translated():
        cols = ", ".join(CALLBOOK_COLUMNS)
        kept = ("name", "entity_name", "first_name", "middle_initial", "last_name", "email", "street", "city",
                "state", "zip", "frn", "operator_class", "previous_call")  # EN/AM may be absent from a diff
        replaced = ("usi", "license_status", "grant_date", "expire_date")
        updates = ", ".join([f"{c} = coalesce(EXCLUDED.{c}, callbook.{c})" for c in kept]
                            + [f"{c} = EXCLUDED.{c}" for c in replaced] + ["updated_at = now()"])
        async with conn.transaction():
            await conn.execute("DROP TABLE IF EXISTS pg_temp.fcc_rows")
            await _analyze_raw(conn)
            await conn.execute(f"CREATE TEMPORARY TABLE fcc_rows AS {LICENCES}")
            await conn.execute("DELETE FROM callbook c USING fcc_rows r WHERE c.usi = r.usi"
                               " AND c.callsign <> r.callsign")
            cur = await conn.execute(
                f"INSERT INTO callbook ({cols}) SELECT {cols} FROM fcc_rows ON CONFLICT (callsign) DO UPDATE"
                f" SET {updates} WHERE callbook.usi = EXCLUDED.usi OR EXCLUDED.license_status = 'A'"
                " OR callbook.license_status IS DISTINCT FROM 'A'")
            await conn.execute("DROP TABLE fcc_rows")
            return cur.rowcount


# ---- lookups

async def lookup(db: Database, callsign: str) -> Row | None:
    """What GET /api/callbook/{call} shows. Never the email: it is selected nowhere outside the FCC-email code."""
    async with db.connection() as conn:
        rows = await fetch_on(conn, "SELECT callsign, name, operator_class, license_status, grant_date,"
                                    " expire_date, city, state, updated_at FROM callbook WHERE callsign = %s",
                              [callsign])
    return rows[0] if rows else None


async def email(db: Database, callsign: str) -> Row | None:
    """`email` and `license_status`, for e-mail sign-in (the one place that reads the address)."""
    return await db.fetchrow("SELECT email, license_status FROM callbook WHERE callsign = %s", [callsign])
