"""Bulk storage of QSOs: binary COPY into a temporary staging table, then one INSERT per batch.

`encode_rows` is pure CPU (it can run in a worker thread); `store_rows` sends one batch inside the
caller's transaction: COPY into the staging table, then `INSERT ... SELECT ... ON CONFLICT DO NOTHING`
against the `qsos_dedupe` index, so a duplicate (already stored, or twice in one file) costs no round
trip of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg._copy_base import (
    BinaryFormatter,  # private, hence the pinned psycopg (tests/ingest/test_copy.py)
)
from psycopg.adapt import Transformer
from psycopg.pq import Format

from hamsrv.db.errors import translated
from hamsrv.db.qsos import LOCK_OWNER
from hamsrv.db.trio_pg import TrioConnection
from hamsrv.errors import HamsrvError
from hamsrv.model import QSO_COLUMNS, Qso

# PostgreSQL types of QSO_COLUMNS, in order: binary COPY needs them spelled out.
_COLUMN_TYPES = {
    "start_at": "timestamptz", "end_at": "timestamptz", "freq": "float8", "freq_rx": "float8",
    "dxcc": "int4", "qslsdate": "date", "qslrdate": "date", "lotw_qslsdate": "date",
    "lotw_qslrdate": "date", "eqsl_qslsdate": "date", "eqsl_qslrdate": "date", "extra": "jsonb",
}
_OIDS = [psycopg.adapters.types.get_oid(_COLUMN_TYPES.get(c, "text")) for c in QSO_COLUMNS]

QSL_COLUMNS = ("qsl_sent", "qsl_rcvd", "qslsdate", "qslrdate", "lotw_qsl_sent", "lotw_qsl_rcvd",
               "lotw_qslsdate", "lotw_qslrdate", "eqsl_qsl_sent", "eqsl_qsl_rcvd", "eqsl_qslsdate",
               "eqsl_qslrdate")

def encode_rows(rows: list[Qso]) -> bytes:
    """`rows` as one complete binary COPY stream (signature, rows, trailer)."""
    transformer = Transformer()
    transformer.set_dumper_types(_OIDS, Format.BINARY)
    formatter = BinaryFormatter(transformer)
    parts = [formatter.write_row(row) for row in rows]
    parts.append(formatter.end())
    return b"".join(parts)


@dataclass(slots=True)
class Stored:
    """What one batch did to `qsos`: inserted + duplicates + merged = rows sent."""

    inserted: int = 0
    duplicates: int = 0
    merged: int = 0


_COLUMNS = ", ".join(QSO_COLUMNS)
_STAGING = (f"CREATE TEMP TABLE IF NOT EXISTS qso_staging ON COMMIT DELETE ROWS AS"
            f" SELECT {_COLUMNS} FROM qsos WITH NO DATA")
_COPY = f"COPY qso_staging ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_INSERT = (f"INSERT INTO qsos (owner_id, {_COLUMNS}) SELECT %s, {_COLUMNS} FROM qso_staging"
           " ON CONFLICT DO NOTHING")
# Merge: QSL fields of an existing QSO with the same dedupe key take the incoming values that are
# set; when the batch holds the same QSO twice, the later record wins. Only QSOs whose QSL fields
# really change count as merged; the others are duplicates.
_MERGE = (
    "UPDATE qsos q SET " + ", ".join(f"{c} = coalesce(s.{c}, q.{c})" for c in QSL_COLUMNS)
    + ", updated_at = now() FROM (SELECT DISTINCT ON (call, coalesce(band, ''), coalesce(mode, ''),"
    " date_trunc('minute', start_at AT TIME ZONE 'UTC')) * FROM qso_staging"
    " ORDER BY call, coalesce(band, ''), coalesce(mode, ''), date_trunc('minute', start_at AT TIME ZONE 'UTC'),"
    " ctid DESC) s"
    " WHERE q.owner_id = %s AND q.call = s.call AND coalesce(q.band, '') = coalesce(s.band, '')"
    " AND coalesce(q.mode, '') = coalesce(s.mode, '')"
    " AND q.start_minute = date_trunc('minute', s.start_at AT TIME ZONE 'UTC')"
    " AND (" + " OR ".join(f"q.{c} IS DISTINCT FROM coalesce(s.{c}, q.{c})" for c in QSL_COLUMNS) + ")")

async def prepare_connection(conn: TrioConnection) -> None:
    """Create the session's staging table (once per connection; rows vanish at each commit)."""
    with translated():
        await conn.execute(_STAGING)


async def store_rows(conn: TrioConnection, owner_id: int, data: bytes, rows: int, *, merge: bool) -> Stored:
    """Store `rows` QSOs, encoded by encode_rows() as `data`, for `owner_id`. The caller holds a
    transaction on `conn` (and commits it with its progress counters); prepare_connection() must have
    run on `conn`. Raises RefusedData when PostgreSQL rejects the data itself."""
    with translated():
        return await _store_rows(conn, owner_id, data, rows, merge)


async def _store_rows(conn: TrioConnection, owner_id: int, data: bytes, rows: int, merge: bool) -> Stored:
    if not rows:
        return Stored()
    if (await conn.execute(LOCK_OWNER, [owner_id])).rowcount != 1:
        raise HamsrvError(f"user {owner_id} no longer exists")
    await conn.execute("SET LOCAL hamsrv.quiet = on")  # a bulk import is not firehose news
    async with conn.cursor().copy(_COPY) as copy:
        await copy.write(data)
    merged = 0
    if merge:
        await conn.execute("ANALYZE qso_staging")  # a fresh temp table has no statistics
        merged = (await conn.execute(_MERGE, [owner_id])).rowcount
    inserted = (await conn.execute(_INSERT, [owner_id])).rowcount
    return Stored(inserted, rows - inserted - merged, merged)
