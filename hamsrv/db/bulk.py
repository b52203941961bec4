"""Bulk storage of QSOs: binary COPY straight into `qsos` when no row is likely to be a duplicate (no
QSO of the owner in the batch's time range, or the import's previous batch held no duplicate: new
QSOs in any order), else into a temporary staging table and then one INSERT ... ON CONFLICT DO NOTHING
per batch. A straight COPY that meets a duplicate after all stops at it and the batch goes through
staging, so a guess costs time, never a row.

`CopyRows` builds the COPY stream (pure CPU: it runs in a worker thread, and the C fast path
hamsrv.ingest._fastadi appends rows to it in the same format); `store_rows` sends one batch inside the
caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg._copy_base import (  # private, hence the pinned psycopg (tests/ingest/test_copy.py)
    format_row_binary,
)
from psycopg.adapt import Transformer
from psycopg.pq import Format

from hamsrv.db.errors import translated
from hamsrv.db.qsos import LOCK_OWNER
from hamsrv.db.trio_pg import TrioConnection
from hamsrv.errors import HamsrvError
from hamsrv.model import QSO_COLUMNS, Qso

# PostgreSQL types of owner_id + QSO_COLUMNS, in order: binary COPY needs them spelled out.
_COLUMN_TYPES = {
    "owner_id": "int8", "start_at": "timestamptz", "end_at": "timestamptz", "freq": "float8",
    "freq_rx": "float8", "dxcc": "int4", "qslsdate": "date", "qslrdate": "date", "lotw_qslsdate": "date",
    "lotw_qslrdate": "date", "eqsl_qslsdate": "date", "eqsl_qslrdate": "date", "extra": "jsonb",
}
_ROW_COLUMNS = ("owner_id", *QSO_COLUMNS)
_OIDS = [psycopg.adapters.types.get_oid(_COLUMN_TYPES.get(c, "text")) for c in _ROW_COLUMNS]
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # no flags, no header extension
_TRAILER = b"\xff\xff"

QSL_COLUMNS = ("qsl_sent", "qsl_rcvd", "qslsdate", "qslrdate", "lotw_qsl_sent", "lotw_qsl_rcvd",
               "lotw_qslsdate", "lotw_qslrdate", "eqsl_qsl_sent", "eqsl_qsl_rcvd", "eqsl_qslsdate",
               "eqsl_qslrdate")


class CopyRows:
    """One binary COPY stream of (owner_id, *QSO_COLUMNS) rows of one owner, built row by row.
    `data` may also be appended to directly, in the same row format, by whoever counts in `rows`."""

    def __init__(self, owner_id: int) -> None:
        self.owner_id = owner_id
        self.data = bytearray(_SIGNATURE)
        self.rows = 0
        self._transformer = Transformer()
        self._transformer.set_dumper_types(_OIDS, Format.BINARY)

    def add(self, row: Qso) -> None:
        format_row_binary((self.owner_id, *row), self._transformer, self.data)
        self.rows += 1

    def finish(self) -> bytes:
        """The complete stream; add() must not be called after it."""
        self.data += _TRAILER
        return bytes(self.data)


@dataclass(slots=True)
class Duplicate:
    """A row of the batch that was not stored: its position in the batch (1 = first row) and its QSO."""

    row: int
    call: str
    start_at: datetime
    band: str | None
    mode: str | None


@dataclass(slots=True)
class Stored:
    """What one batch did to `qsos`: inserted + duplicates + merged + up_to_date = rows sent. A merge
    counts as duplicates only the rows a later row of the same batch replaced; the QSOs it found stored
    with nothing to change are `up_to_date`. `duplicate_rows` names the first duplicates (see store_rows)."""

    inserted: int = 0
    duplicates: int = 0
    merged: int = 0
    up_to_date: int = 0
    duplicate_rows: list[Duplicate] = field(default_factory=list)


_COLUMNS = ", ".join(_ROW_COLUMNS)
# The staging table keeps `extra` as the bytes binary COPY sends for jsonb (a version byte, then the
# JSON text), so staging a row does not parse its JSON: only rows that reach qsos are parsed, once. A
# re-upload (every row a duplicate) stages 40% faster (measured on 20,000-row batches).
_STAGED_EXTRA = "convert_from(substring(extra FROM 2), 'UTF8')::jsonb"
_STAGING = ("CREATE TEMP TABLE IF NOT EXISTS qso_staging ON COMMIT DELETE ROWS AS SELECT "
            + ", ".join("NULL::bytea AS extra" if c == "extra" else c for c in _ROW_COLUMNS)
            + " FROM qsos WITH NO DATA")
# Each staged row's place in its batch (1 = first): COPY fills the default row by row in input order,
# and the sequence starts again at each batch. (ctid order is not input order: rows can land on any
# page with room.)
_STAGING_ORDER = "ALTER TABLE qso_staging ADD COLUMN IF NOT EXISTS ord bigserial"
_RESTART_ORDER = "SELECT setval(pg_get_serial_sequence('qso_staging', 'ord'), 1, false)"
_FROM_STAGING = ", ".join(_STAGED_EXTRA if c == "extra" else c for c in _ROW_COLUMNS)
_COPY_STAGING = f"COPY qso_staging ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_COPY_DIRECT = f"COPY qsos ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
# The anti-join skips the QSOs already stored with one probe of the dedupe index each, twice as fast
# as letting ON CONFLICT find them (a re-upload is nearly all duplicates); ON CONFLICT still catches
# a QSO twice in the batch, or one inserted meanwhile by someone else.
_SAME_QSO = ("q.owner_id = s.owner_id AND q.start_minute = date_trunc('minute', s.start_at AT TIME ZONE 'UTC')"
             " AND q.call = s.call AND coalesce(q.band, '') = coalesce(s.band, '')"
             " AND coalesce(q.mode, '') = coalesce(s.mode, '')")
_INSERT = (f"INSERT INTO qsos ({_COLUMNS}) SELECT {_FROM_STAGING} FROM qso_staging s"
           f" WHERE NOT EXISTS (SELECT FROM qsos q WHERE {_SAME_QSO}) ON CONFLICT DO NOTHING")
# One round trip before each batch: lock the owner (the QSOs' reference to it), keep the import off
# the firehose, skip the wait for the WAL flush at commit (the job's progress commits with the rows, so
# a crash loses both or neither), and look for QSOs of the owner in the batch's time range. The staging
# statements join a batch with the owner's QSOs: one dedupe index probe per staged row is the plan
# that stays fast on any logbook (a merge join walked all 1,000,000 QSOs of the owner for each batch),
# so the other join methods are off for the transaction, and the merge's sort of a batch gets the
# memory to stay off the disk.
_BEGIN = ("SELECT set_config('hamsrv.quiet', 'on', true), set_config('synchronous_commit', 'off', true),"
          " set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true),"
          " set_config('work_mem', '64MB', true),"
          " EXISTS (SELECT FROM qsos WHERE owner_id = owner.id AND start_minute"
          " BETWEEN date_trunc('minute', %s AT TIME ZONE 'UTC') AND date_trunc('minute', %s AT TIME ZONE 'UTC'))"
          f" FROM ({LOCK_OWNER}) owner")
# Merge: one INSERT ... ON CONFLICT DO UPDATE, so each QSO of the batch costs one probe of the dedupe
# index: a new QSO is inserted, a stored one takes the incoming QSL fields that are set (in place:
# see the fillfactor in migration 0006). Only QSOs whose QSL fields really change count as merged
# (the WHERE), the others are up to date; `xmax = 0` tells an inserted row from an updated one. A
# statement may not update a row twice, so the batch holds each QSO once: when it has the same QSO
# twice, the later record wins (the earlier is a duplicate). Taken in the dedupe index's order (start
# minute first), which is also the order on disk of a logbook imported in time order, so probes and
# updates walk forward.
_KEY = "date_trunc('minute', start_at AT TIME ZONE 'UTC'), call, coalesce(band, ''), coalesce(mode, '')"
_MERGE = (
    f"WITH stored AS (INSERT INTO qsos ({_COLUMNS}) SELECT {_FROM_STAGING} FROM"
    f" (SELECT DISTINCT ON ({_KEY}) * FROM qso_staging ORDER BY {_KEY}, ord DESC) s"
    " ON CONFLICT (owner_id, start_minute, call, coalesce(band, ''), coalesce(mode, '')) DO UPDATE SET "
    + ", ".join(f"{c} = coalesce(excluded.{c}, qsos.{c})" for c in QSL_COLUMNS) + ", updated_at = now()"
    " WHERE " + " OR ".join(f"qsos.{c} IS DISTINCT FROM coalesce(excluded.{c}, qsos.{c})" for c in QSL_COLUMNS)
    + " RETURNING xmax = 0 AS new)"
    " SELECT count(*) FILTER (WHERE new), count(*) FILTER (WHERE NOT new) FROM stored")
# The QSOs of a merged batch (asked only when some rows neither inserted nor changed anything: the rest
# of those are the duplicates the merge replaced by a later row).
_DISTINCT_QSOS = f"SELECT count(*) FROM (SELECT DISTINCT {_KEY} FROM qso_staging) d"


# The first duplicates of a batch just stored through staging, asked only while the import's list of
# duplicates has room: rows are numbered in COPY order. A row is a duplicate when an earlier row of the
# batch has the same QSO (a merge keeps the later one instead), or, without merge, when the stored QSO
# is not the one this transaction inserted. Without merge the batch's first rows are asked first: a
# re-upload's first rows are duplicates, so the listing costs a few hundred index probes, not a batch's.
def _duplicates(*, merge: bool, first_rows: bool = False) -> str:
    earlier_first = "DESC" if merge else "ASC"
    stored_before = "" if merge else (f" OR EXISTS (SELECT FROM qsos q WHERE {_SAME_QSO}"
                                      " AND q.xmin <> pg_current_xact_id()::xid)")
    prefix = f" WHERE ord <= {_FIRST_ROWS}" if first_rows else ""
    return ("SELECT n, call, start_at, band, mode FROM (SELECT ord AS n,"
            f" row_number() OVER (PARTITION BY {_KEY} ORDER BY ord {earlier_first}) AS nth, *"
            f" FROM qso_staging{prefix}) s WHERE nth > 1{stored_before} ORDER BY n LIMIT %s")


_FIRST_ROWS = 400
_DUPLICATES = {merge: _duplicates(merge=merge) for merge in (False, True)}
_DUPLICATES_FIRST_ROWS = _duplicates(merge=False, first_rows=True)


async def prepare_connection(conn: TrioConnection) -> None:
    """Create the session's staging table (once per connection; rows vanish at each commit)."""
    with translated():
        await conn.execute(_STAGING)
        await conn.execute(_STAGING_ORDER)


async def store_rows(conn: TrioConnection, owner_id: int, data: bytes, rows: int, *, merge: bool,
                     starts: tuple[datetime, datetime] | None = None, expect_new: bool = False,
                     list_duplicates: int = 0) -> Stored:
    """Store `rows` QSOs of `owner_id`, encoded by CopyRows as `data`; `starts` is the range of their
    start times. `expect_new` says the previous batch of the same import held no duplicate, so this
    one most likely holds none either, whatever its time range. Up to `list_duplicates` of the batch's
    duplicates are named in the result. The caller holds a transaction on `conn` (and commits it with
    its progress counters); prepare_connection() must have run on `conn`.
    Raises RefusedData when PostgreSQL rejects the data."""
    with translated():
        stored = await _store_rows(conn, owner_id, data, rows, merge, starts, expect_new)
        wanted = min(list_duplicates, stored.duplicates)
        if wanted > 0:
            stored.duplicate_rows = [] if merge else await _first_duplicates(conn, _DUPLICATES_FIRST_ROWS, wanted)
            if len(stored.duplicate_rows) < wanted:
                stored.duplicate_rows = await _first_duplicates(conn, _DUPLICATES[merge], wanted)
        return stored


async def _first_duplicates(conn: TrioConnection, query: str, wanted: int) -> list[Duplicate]:
    return [Duplicate(*row) for row in await (await conn.execute(query, [wanted])).fetchall()]


async def _store_rows(conn: TrioConnection, owner_id: int, data: bytes, rows: int, merge: bool,
                      starts: tuple[datetime, datetime] | None, expect_new: bool) -> Stored:
    if not rows:
        return Stored()
    begun = await (await conn.execute(_BEGIN, [*(starts or (None, None)), owner_id])).fetchone()
    if begun is None:
        raise HamsrvError(f"user {owner_id} no longer exists")
    nothing_in_range = starts is not None and not begun[-1]
    if not merge and (expect_new or nothing_in_range) and await _straight_in(conn, data):
        return Stored(inserted=rows)
    await conn.execute(_RESTART_ORDER)
    async with conn.cursor().copy(_COPY_STAGING) as copy:
        await copy.write(data)
    if not merge:
        inserted = (await conn.execute(_INSERT)).rowcount
        return Stored(inserted, rows - inserted)
    counted = await (await conn.execute(_MERGE)).fetchone()
    assert counted is not None
    inserted, merged = counted
    unchanged = rows - inserted - merged
    if not unchanged:
        return Stored(inserted, 0, merged)
    distinct = await (await conn.execute(_DISTINCT_QSOS)).fetchone()
    assert distinct is not None
    return Stored(inserted, rows - distinct[0], merged, distinct[0] - inserted - merged)


async def _straight_in(conn: TrioConnection, data: bytes) -> bool:
    """COPY the batch straight into `qsos`, twice as fast as staging plus INSERT. False, with nothing
    stored, when a row is a duplicate after all (already stored, twice in the batch, or inserted
    meanwhile by someone else)."""
    try:
        async with conn.transaction(), conn.cursor().copy(_COPY_DIRECT) as copy:
            await copy.write(data)
    except psycopg.errors.UniqueViolation:
        return False
    return True
