"""ADIF bytes -> batches ready for storage: parse -> normalise -> binary COPY encoding. No I/O.

`BatchMaker` does all the CPU work, so it can run in a worker thread while the database stores the
previous batch (hamsrv.db.bulk.store_rows). Plain ADI records (the bulk of real logs) go through the
compiled fast path `_fastadi`, which writes the very bytes the Python path would; every other record
goes through AdiParser, normalize() and CopyRows.add().
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hamsrv.db.bulk import CopyRows
from hamsrv.ingest import _fastadi
from hamsrv.ingest.adif import (
    AdiParser,
    AdxParser,
    Header,
    LotwEof,
    ParseProblem,
    Record,
    is_lotw_credit_report,
    is_lotw_report,
    parser_for,
)
from hamsrv.ingest.normalize import ACTIVE_MODES, SUBMODE_PARENT, Reject, normalize
from hamsrv.model import BANDS, QSO_COLUMNS

DEFAULT_BATCH_RECORDS = 20_000  # per COPY and commit: 5,000 cost 7% of the rate, 50,000 twice the memory
# The database waits for the first batch while it is being parsed: a small one gets it going sooner
# (a 100,000-QSO LoTW report parsed 20,000 records, 75 ms, before anything was stored).
FIRST_BATCH_RECORDS = 2_000
_SNIFF_BYTES = 64
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # binary COPY times count microseconds from it
_ONE_US = timedelta(microseconds=1)
_NO_START = 2**63 - 1
CREDIT_REPORT = ("a LoTW DXCC QSL Card Report: each record is a DXCC credit, imported as a LoTW confirmation by "
                 "call, band, mode group and date; it has no time of day, so each QSO is stored at 00:00 UTC "
                 "with a note in APP_HAMSRV_NOTE")

if _fastadi.COLUMNS != QSO_COLUMNS:  # the C file knows the columns by position
    raise ImportError("hamsrv/ingest/_fastadi.c does not match model.QSO_COLUMNS (rebuild: make test)")
_fastadi.configure(BANDS, ACTIVE_MODES, SUBMODE_PARENT)


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
    starts: tuple[datetime, datetime] | None = None  # earliest and latest start time of the rows

    def record_of_row(self, row: int) -> int:
        """The record number of the batch's `row`-th row (1 = first): rows are the batch's records
        that are not rejects, in input order."""
        number = self.first_record - 1 + row
        for rejected in sorted(r["record"] for r in self.rejects):
            if rejected > number:
                break
            number += 1
        return number


def _problem(record: int, offset: int, field_name: str | None, reason: str) -> dict[str, Any]:
    return {"record": record, "offset": offset, "field": field_name, "reason": reason}


class BatchMaker:
    """Bytes in, batches out. No I/O: feed() the input, then take batches with batches().

    Every record the parser counts ends up in exactly one batch, as a row or as a reject, so
    rows + rejects of all batches = records in the input. Records numbered `skip_through` or less
    were stored by an earlier, interrupted run and are parsed but not emitted again.
    """

    def __init__(self, owner_id: int, *, batch_records: int = DEFAULT_BATCH_RECORDS, skip_through: int = 0):
        self.owner_id = owner_id
        self.batch_records = batch_records
        self._limit = min(batch_records, FIRST_BATCH_RECORDS)  # records in the batch being made
        self.skip_through = skip_through
        self.parser: AdiParser | AdxParser | None = None
        self.header: Header | None = None
        self.lotw_report = False
        self.lotw_eof = False
        self._head = b""
        self._closed = False
        self._done = False
        self._last_seen = 0           # highest record number accounted for
        self._first = skip_through + 1
        self._offset = 0
        self._rows = CopyRows(owner_id)
        self._starts = (_NO_START, -_NO_START)  # microseconds from _PG_EPOCH
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
        if isinstance(self.parser, AdiParser):
            self.parser.fast_records = 1  # _fastadi is faster: hand back to it after each record
        if head:
            self.parser.feed(head)

    def batches(self) -> Iterator[Batch]:
        """Every batch complete now; after close(), the rest, the last one marked `final`."""
        if self.parser is None or self._done:
            return
        parser = self.parser
        while True:
            if self._take_plain_records() and self._full():
                yield self._batch()
                continue
            event = parser.next_event()
            if event is None:
                break
            if isinstance(event, Record):
                self._record(event)
                if self._full():
                    yield self._batch()
            elif isinstance(event, ParseProblem):
                self._parse_problem(event)
            elif isinstance(event, Header):
                self.header = event
                self.lotw_report = is_lotw_report(event)
                if is_lotw_credit_report(event) and self.skip_through == 0:
                    self._warnings.append(_problem(0, 0, None, CREDIT_REPORT))
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

    def _full(self) -> bool:
        return self._rows.rows + len(self._rejects) >= self._limit

    def _take_plain_records(self) -> int:
        """Let _fastadi take the plain records that follow, when the parser stands between records
        and nothing is owed to the next record (a pending problem, an uncounted dropped record, the
        records an earlier run stored)."""
        parser = self.parser
        if not isinstance(parser, AdiParser) or self._pending or self._last_seen < self.skip_through:
            return 0
        view = parser.between_records()
        if view is None or view[3] != self._last_seen:
            return 0
        text, pos, base, _ = view
        room = self._limit - self._rows.rows - len(self._rejects)
        pos, count, last_start, first_us, last_us = _fastadi.encode(
            text, pos, room, self.owner_id, self.lotw_report, parser.max_field_bytes, parser.max_record_bytes,
            self._rows.data)
        if count:
            parser.took_records(pos, count)
            self._rows.rows += count
            self._last_seen += count
            self._offset = base + last_start
            self._saw_starts(first_us, last_us)
        return count

    def _saw_starts(self, first_us: int, last_us: int) -> None:
        self._starts = (min(self._starts[0], first_us), max(self._starts[1], last_us))

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
        oversized = next((p for p in problems if p.field), None)
        if oversized is not None:  # the API refuses such a QSO: so does the import, naming the field
            assert self.parser is not None
            self._rejects.append(_problem(number, oversized.offset, oversized.field,
                                          f"longer than {self.parser.max_field_bytes} bytes"))
            return
        for p in problems:
            self._warnings.append(_problem(number, p.offset, None, p.message))
        result = normalize(record.fields, lotw_report=self.lotw_report, check_nul=self._nul_seen)
        if isinstance(result, Reject):
            self._rejects.append(_problem(number, record.offset, result.field, result.reason))
        else:
            self._rows.add(result)
            start = (result.start_at - _PG_EPOCH) // _ONE_US
            self._saw_starts(start, start)


    def _batch(self) -> Batch:
        rows, self._rows = self._rows, CopyRows(self.owner_id)
        (first, last), self._starts = self._starts, (_NO_START, -_NO_START)
        batch = Batch(rows.finish() if rows.rows else b"", rows.rows, self._first,
                      max(self._last_seen, self._first - 1), self._offset, self._rejects, self._warnings,
                      starts=(_PG_EPOCH + first * _ONE_US, _PG_EPOCH + last * _ONE_US) if rows.rows else None)
        self._rejects, self._warnings = [], []
        self._first = batch.last_record + 1
        self._limit = self.batch_records
        return batch
