"""Bulk storage of QSOs: parse -> normalise -> binary COPY into a staging table -> one INSERT per batch.

Two halves. `BatchMaker` does all the CPU work without I/O (parse, normalise, encode rows in
PostgreSQL's binary COPY format), so it can run in a worker thread while the database inserts the
previous batch. `store_batch` sends one batch inside the caller's transaction: COPY into a temporary
staging table, then `INSERT ... SELECT ... ON CONFLICT DO NOTHING` against the `qsos_dedupe` index, so
a duplicate (already stored, or twice in the same file) costs no round trip of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg._copy_base import (
    BinaryFormatter,  # private, hence the pinned psycopg (tests/ingest/test_copy.py)
)
from psycopg.adapt import Transformer
from psycopg.pq import Format

from hamsrv.db.qsos import LOCK_OWNER
from hamsrv.db.trio_pg import TrioConnection
from hamsrv.errors import HamsrvError
from hamsrv.ingest.adif import (
    AdiParser,
    AdxParser,
    Header,
    LotwEof,
    ParseProblem,
    Record,
    is_lotw_report,
    parser_for,
)
from hamsrv.ingest.normalize import QSO_COLUMNS, Qso, Reject, normalize

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

DEFAULT_BATCH_RECORDS = 5000
_SNIFF_BYTES = 64


@dataclass(slots=True)
class Batch:
    """Records `first_record`..`last_record` of the input (parser numbering), ready to store.

    `rejects` and `warnings` hold every entry of this batch (the job caps what it keeps);
    `end_offset` is where in the input the batch's last record starts."""

    data: bytes
    rows: int
    first_record: int
    last_record: int
    end_offset: int
    rejects: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    final: bool = False

    @property
    def records(self) -> int:
        return self.last_record - self.first_record + 1


def _problem(record: int, offset: int, field_name: str | None, reason: str) -> dict[str, Any]:
    return {"record": record, "offset": offset, "field": field_name, "reason": reason}


def encode_rows(rows: list[Qso]) -> bytes:
    """`rows` as one complete binary COPY stream (signature, rows, trailer)."""
    transformer = Transformer()
    transformer.set_dumper_types(_OIDS, Format.BINARY)
    formatter = BinaryFormatter(transformer)
    parts = [formatter.write_row(row) for row in rows]
    parts.append(formatter.end())
    return b"".join(parts)


class BatchMaker:
    """Bytes in, batches out. No I/O: feed() the input, then take batches with batches().

    Every record the parser counts ends up in exactly one batch, as a row or as a reject, so
    rows + rejects of all batches = records in the input. Records numbered `skip_through` or less
    were stored by an earlier, interrupted run and are parsed but not emitted again.
    """

    def __init__(self, *, batch_records: int = DEFAULT_BATCH_RECORDS, skip_through: int = 0):
        self.batch_records = batch_records
        self.skip_through = skip_through
        self.parser: AdiParser | AdxParser | None = None
        self.header: Header | None = None
        self.lotw_report = False
        self.lotw_eof = False
        self.format = ""
        self._head = b""
        self._closed = False
        self._done = False
        self._last_seen = 0           # highest record number accounted for
        self._first = skip_through + 1
        self._offset = 0
        self._rows: list[Qso] = []
        self._rejects: list[dict[str, Any]] = []
        self._warnings: list[dict[str, Any]] = []
        self._pending: dict[int, list[ParseProblem]] = {}  # problems of records not seen yet
        self._nul_seen = False

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self._nul_seen = self._nul_seen or b"\x00" in data
        if self.parser is None:
            self._head += data
            if len(self._head) < _SNIFF_BYTES:
                return
            head, self._head = self._head, b""
            self._start(head)
        else:
            self.parser.feed(data)

    def close(self) -> None:
        if self.parser is None:
            self._start(self._head)
        assert self.parser is not None
        self.parser.close()
        self._closed = True

    def _start(self, head: bytes) -> None:
        self.parser = parser_for(head)
        self.format = "adx" if isinstance(self.parser, AdxParser) else "adi"
        if head:
            self.parser.feed(head)

    def batches(self) -> Iterator[Batch]:
        """Every batch complete now; after close(), the rest, the last one marked `final`."""
        if self.parser is None or self._done:
            return
        for event in self.parser.events():
            if isinstance(event, Record):
                self._record(event)
                if len(self._rows) + len(self._rejects) >= self.batch_records:
                    yield self._batch()
            elif isinstance(event, ParseProblem):
                self._parse_problem(event)
            elif isinstance(event, Header):
                self.header = event
                self.lotw_report = is_lotw_report(event)
            elif isinstance(event, LotwEof):
                self.lotw_eof = True
        if self._closed:
            for number in sorted(self._pending):
                if number > self._last_seen:
                    self._account_dropped(number)
            if self.lotw_report and not self.lotw_eof and self.skip_through == 0:
                self._warnings.append(_problem(0, 0, None, "LoTW report without <APP_LoTW_EOF>: "
                                               "the download may be truncated"))
            self._done = True
            batch = self._batch()
            batch.final = True
            yield batch

    def _parse_problem(self, problem: ParseProblem) -> None:
        number = problem.record_number
        if number == 0:
            if self.skip_through == 0:
                self._warnings.append(_problem(0, problem.offset, None, problem.message))
        elif number > self._last_seen:
            self._pending.setdefault(number, []).append(problem)

    def _account_dropped(self, number: int) -> None:
        """Records the parser counted but never produced (oversized, cut off by an XML error)."""
        for missing in range(self._last_seen + 1, number + 1):
            problems = self._pending.pop(missing, [])
            if missing > self.skip_through:
                reason = "; ".join(p.message for p in problems) or "empty record"
                offset = problems[0].offset if problems else self._offset
                self._rejects.append(_problem(missing, offset, None, reason))
        self._last_seen = number

    def _record(self, record: Record) -> None:
        number = record.number
        if number - 1 > self._last_seen:
            self._account_dropped(number - 1)
        self._last_seen = number
        self._offset = record.offset
        problems = self._pending.pop(number, [])
        if number <= self.skip_through:
            return
        for p in problems:
            self._warnings.append(_problem(number, p.offset, None, p.message))
        result = normalize(record.fields, lotw_report=self.lotw_report, check_nul=self._nul_seen)
        if isinstance(result, Reject):
            self._rejects.append(_problem(number, record.offset, result.field, result.reason))
        else:
            self._rows.append(result)


    def _batch(self) -> Batch:
        rows, self._rows = self._rows, []
        batch = Batch(encode_rows(rows) if rows else b"", len(rows), self._first,
                      max(self._last_seen, self._first - 1), self._offset, self._rejects, self._warnings)
        self._rejects, self._warnings = [], []
        self._first = batch.last_record + 1
        return batch


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
    await conn.execute(_STAGING)


async def store_batch(conn: TrioConnection, owner_id: int, batch: Batch, *, merge: bool) -> Stored:
    """Store `batch` for `owner_id`. The caller holds a transaction on `conn` (and commits it together
    with its progress counters); prepare_connection() must have run on `conn`."""
    if not batch.rows:
        return Stored()
    if (await conn.execute(LOCK_OWNER, [owner_id])).rowcount != 1:
        raise HamsrvError(f"user {owner_id} no longer exists")
    await conn.execute("SET LOCAL hamsrv.quiet = on")  # a bulk import is not firehose news
    async with conn.cursor().copy(_COPY) as copy:
        await copy.write(batch.data)
    merged = 0
    if merge:
        await conn.execute("ANALYZE qso_staging")  # a fresh temp table has no statistics
        merged = (await conn.execute(_MERGE, [owner_id])).rowcount
    inserted = (await conn.execute(_INSERT, [owner_id])).rowcount
    return Stored(inserted, batch.rows - inserted - merged, merged)
