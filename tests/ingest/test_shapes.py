"""Every file shape of bench.ingest imports exactly the rows of the careful path.

The fast import (compiled fast path, batches of many records, straight COPY when new QSOs are
expected, staging + ON CONFLICT otherwise) is compared with the careful one (the Python parser and
normalize() for every record, one record per batch) on small versions of the bench's files: the
same rows end up in `qsos` (every column but id and timestamps) and the counts are the same."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from bench.ingest import (
    HEADER,
    LOTW_HEAD,
    LOTW_TAIL,
    lotw_confirmations,
    plus_new_records,
    real_log_records,
    synthetic_records,
)
from hamsrv.db.database import Database
from hamsrv.ingest.copy import BatchMaker
from hamsrv.ingest.jobs import ImportResult, import_stream
from hamsrv.model import QSO_COLUMNS

ROWS = 600


async def _chunks(data: bytes, size: int = 7919) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def fast_import(db: Database, owner: int, data: bytes, merge: bool) -> ImportResult:
    return await import_stream(db, owner, _chunks(data), merge=merge, batch_records=128)


async def careful_import(db: Database, owner: int, data: bytes, merge: bool,
                         monkeypatch: pytest.MonkeyPatch) -> ImportResult:
    with monkeypatch.context() as patch:
        patch.setattr(BatchMaker, "_take_plain_records", lambda self: 0)
        return await import_stream(db, owner, _chunks(data), merge=merge, batch_records=1)


def _file(records: list[bytes], head: bytes = HEADER, tail: bytes = b"") -> bytes:
    return head + b"".join(records) + tail


ORDERED = list(synthetic_records(ROWS))
SHUFFLED = random.Random(5).sample(ORDERED, len(ORDERED))
REAL = list(real_log_records(ROWS))
# shape: (the logbook's earlier import, the file, merge)
SHAPES = {
    "1_ordered": (None, _file(ORDERED), False),
    "2_shuffled": (None, _file(SHUFFLED), False),
    "3_5_a_minute": (None, _file(list(synthetic_records(ROWS, seed=3, per_minute=5))), False),
    "4_reimport": (_file(ORDERED), _file(ORDERED), False),
    "5_plus_10pct_new": (_file(ORDERED), _file(list(plus_new_records(iter(ORDERED)))), False),
    "6_lotw_merge": (_file(ORDERED), _file(list(lotw_confirmations(iter(ORDERED))), LOTW_HEAD, LOTW_TAIL), True),
    "7_real_logs": (None, _file(REAL), False),
    "shuffled_into_a_log_holding_half": (_file(ORDERED[::2]), _file(SHUFFLED), False),
    # New QSOs with non-ASCII, escaped and APP_ fields stored through the staging table (its `extra`
    # holds the COPY bytes, parsed on the way into qsos), by INSERT and by the merge.
    "real_logs_into_a_log_holding_half": (_file(REAL[::2]), _file(REAL), False),
    "real_logs_merged_into_a_log_holding_half": (_file(REAL[::2]), _file(REAL), True),
}
_COLUMNS = ", ".join(QSO_COLUMNS)


async def _rows(db: Database, owner: int) -> list[dict[str, object]]:
    return await db.fetch(f"SELECT {_COLUMNS} FROM qsos WHERE owner_id = %s"
                          " ORDER BY start_at, call, band, mode", [owner])


def _counts(result: ImportResult) -> tuple[int, ...]:
    return (result.records_read, result.inserted, result.duplicates, result.merged, result.rejected,
            result.warning_count)


@pytest.mark.parametrize("shape", sorted(SHAPES))
async def test_each_shape_imports_the_rows_of_the_careful_path(db: Database, shape: str,
                                                               monkeypatch: pytest.MonkeyPatch):
    before, data, merge = SHAPES[shape]
    fast_owner, careful_owner = [
        (await db.fetch("INSERT INTO users (callsign) VALUES (%s) RETURNING id", [call]))[0]["id"]
        for call in ("W1AW", "W1AW/P")]
    if before is not None:
        assert (await fast_import(db, fast_owner, before, False)).inserted == \
            (await careful_import(db, careful_owner, before, False, monkeypatch)).inserted > 0
    fast = await fast_import(db, fast_owner, data, merge)
    careful = await careful_import(db, careful_owner, data, merge, monkeypatch)
    assert _counts(fast) == _counts(careful)
    assert fast.records_read == fast.inserted + fast.duplicates + fast.merged + fast.up_to_date + fast.rejected
    assert fast.inserted + fast.merged > 0 or shape == "4_reimport"
    fast_rows, careful_rows = await _rows(db, fast_owner), await _rows(db, careful_owner)
    assert len(fast_rows) == len(careful_rows) > 0
    assert fast_rows == careful_rows
