"""Bulk storage through the real database: every testdata file with pinned numbers, dedupe inside a
file and across imports, merge mode on a LoTW report, and the batch accounting (rows + rejects =
records, whatever the chunking)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.ingest import synthetic_records
from hamsrv.db import bulk
from hamsrv.db.bulk import CopyRows
from hamsrv.db.database import Database
from hamsrv.ingest.adif import Record, parse_bytes
from hamsrv.ingest.copy import Batch, BatchMaker
from hamsrv.ingest.jobs import ImportResult, import_stream
from hamsrv.ingest.normalize import Qso, normalize
from tests import testdata

TESTDATA = testdata.TESTDATA / "adif"

# file: (inserted, duplicates, rejected, warnings) for an import into an empty logbook, and for
# files with few rejects the (record, field, reason fragment) of each.
EXPECTED: dict[str, tuple[int, int, int, int]] = {
    "adif_org_316_test_QSOs_2025_08_27.adi": (6191, 0, 0, 0),
    "adif_spec_sample_userdef.adi": (2, 0, 0, 0),
    "adif_spec_sample_userdef.adx": (2, 0, 0, 0),
    "adifmaster_ft8.adi": (126, 0, 0, 0),
    "cloudlog_backup_logbook.adi": (3490, 6, 50, 2),
    "cloudlog_log_noheader_typed.adi": (708, 0, 0, 0),
    "cloudlog_lotwreport6.adi": (1993, 0, 0, 0),
    "cqgma_malformed_header.adi": (0, 0, 1, 2),
    "csn_sat_log.adi": (24, 0, 0, 0),
    "dl1hw_excel_converter.adi": (15, 0, 0, 0),
    "fle_rsgb_contest.adi": (67, 0, 0, 0),
    "hamrs_pota.adi": (1, 0, 0, 0),
    "js8call_export.adi": (1, 0, 0, 0),
    "log4om2_export.adi": (122, 0, 0, 0),
    "loghx_single.adi": (1, 0, 0, 1),
    "lotw_detailed_single.adi": (1, 0, 0, 0),
    "lotw_qslcards_dxcc_report.adi": (1, 0, 0, 1),  # the warning says what a DXCC credit report holds
    "lotwreport_k5dru_crlf.adi": (2899, 0, 0, 0),
    "lotwreport_k9cts.adi": (437, 1, 0, 0),
    "minos_vhf_contest.adi": (45, 0, 0, 0),
    "n3fjp_aclog_export.adi": (437, 1, 0, 0),
    "pota_no_header.adi": (49, 0, 0, 0),
    "pyadif_badfile1_nonascii_in_ascii_field.adx": (0, 0, 2, 0),  # no BAND, no FREQ
    "pyadif_goodfile.adx": (0, 0, 2, 0),
    "pyadif_latin1.adi": (2, 0, 3, 0),
    "pyadif_no_header.adi": (2, 0, 3, 0),
    "pyadif_two_headers.adi": (2, 0, 3, 0),
    "pyadif_utf8_charlen.adi": (2, 0, 3, 0),
    "qle_bad_gridsquare.adi": (42, 0, 1, 0),
    "qlog_all_fields_example.adi": (1, 0, 0, 0),
    "qlog_export.adi": (1, 0, 0, 0),
    "qrz_logbook_k9cts.adi": (928, 1, 2, 0),
    "qrz_logbook_m0nom_4567.adi": (4559, 6, 2, 0),
    "skcclogger_export.adi": (15, 0, 0, 0),
    "wsjtx_261_dl8obf_crlf.adi": (185, 0, 0, 0),
    "wsjtx_300rc1_m7pxz.adi": (1691, 1, 8, 0),
    "wsjtx_logged_adif.adi": (1, 0, 0, 0),
}
REJECTS: dict[str, list[tuple[int, str | None, str]]] = {
    "cqgma_malformed_header.adi": [(1, 'CALL', 'missing')],
    "pyadif_latin1.adi": [(3, 'CALL', 'missing'), (4, 'CALL', 'missing'), (5, 'CALL', 'missing')],
    "pyadif_no_header.adi": [(3, 'CALL', 'missing'), (4, 'CALL', 'missing'), (5, 'CALL', 'missing')],
    "pyadif_two_headers.adi": [(3, 'CALL', 'missing'), (4, 'CALL', 'missing'), (5, 'CALL', 'missing')],
    "pyadif_utf8_charlen.adi": [(3, 'CALL', 'missing'), (4, 'CALL', 'missing'), (5, 'CALL', 'missing')],
}
# issue 14's checks (see tests/ingest/test_testdata_files.py for what each file breaks)
REJECTED_FIELDS = {"cloudlog_backup_logbook.adi": {"CALL": 15, "FREQ": 23, "GRIDSQUARE": 11, "QSL_RCVD": 1}}


async def chunks_of(data: bytes, size: int = 1 << 20) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def new_owner(db: Database, call: str) -> int:
    row = await db.fetchrow("INSERT INTO users (callsign) VALUES (%s) RETURNING id", [call])
    assert row is not None
    return int(row["id"])


async def import_bytes(db: Database, owner_id: int, data: bytes, **options: object) -> ImportResult:
    return await import_stream(db, owner_id, chunks_of(data), batch_records=500, **options)  # type: ignore[arg-type]


def adi(*records: dict[str, str]) -> bytes:
    return b"".join(b"".join(b"<%s:%d>%s" % (k.encode(), len(v.encode()), v.encode()) for k, v in r.items())
                    + b"<EOR>\n" for r in records)


QSO = {"CALL": "W1AW", "QSO_DATE": "20240101", "TIME_ON": "1200", "BAND": "20M", "MODE": "CW"}


def test_every_testdata_file_is_pinned():
    assert sorted(p.name for p in TESTDATA.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_testdata_file(db: Database, name: str):
    data = (TESTDATA / name).read_bytes()
    owner = await new_owner(db, "W1AW")
    result = await import_bytes(db, owner, data)
    records = sum(isinstance(e, Record) for e in parse_bytes(data))
    assert result.inserted + result.duplicates + result.rejected == result.records_read == records
    assert (result.inserted, result.duplicates, result.rejected, result.warning_count) == EXPECTED[name]
    assert await db.fetchrow("SELECT count(*) AS n FROM qsos WHERE owner_id = %s", [owner]) == {"n": result.inserted}
    if name in REJECTS:
        got = [(r["record"], r["field"], r["reason"]) for r in result.rejects]
        assert [(n, f) for n, f, _ in got] == [(n, f) for n, f, _ in REJECTS[name]]
        assert all(want in reason for (_, _, reason), (_, _, want) in zip(got, REJECTS[name], strict=True))
    if name in REJECTED_FIELDS:
        assert Counter(r["field"] for r in result.rejects) == REJECTED_FIELDS[name]
    again = await import_bytes(db, owner, data)  # a second import adds nothing
    assert (again.inserted, again.duplicates, again.rejected) == (0, result.inserted + result.duplicates,
                                                                  result.rejected)


async def test_duplicates_inside_one_file_and_minute_granularity(db: Database):
    owner = await new_owner(db, "W1AW")
    same_minute = {**QSO, "TIME_ON": "120059"}
    other_band = {**QSO, "BAND": "40M"}
    result = await import_bytes(db, owner, adi(QSO, same_minute, other_band, QSO))
    assert (result.inserted, result.duplicates, result.rejected) == (2, 2, 0)


async def test_new_qsos_go_straight_into_qsos(db: Database, monkeypatch: pytest.MonkeyPatch):
    """The fast storage path: rows that cannot be duplicates never touch the staging table."""
    monkeypatch.setattr(bulk, "_COPY_STAGING", "SELECT 'the staging table was used' :: int")
    owner = await new_owner(db, "W1AW")
    result = await import_bytes(db, owner, b"".join(synthetic_records(1200)))
    assert (result.inserted, result.duplicates) == (1200, 0)


async def test_a_duplicate_the_range_check_missed_falls_back_to_staging(db: Database):
    """A QSO stored by someone else between the range check and the COPY: the COPY fails on the
    dedupe index, is rolled back to its savepoint, and the batch goes through staging."""
    owner = await new_owner(db, "W1AW")
    await import_bytes(db, owner, adi(QSO))
    rows = CopyRows(owner)
    for record in ({**QSO, "CALL": "K1ABC"}, QSO, {**QSO, "CALL": "K2ABC"}):
        row = normalize(record)
        assert isinstance(row, Qso)
        rows.add(row)
    far_away = (datetime(1950, 1, 1, tzinfo=UTC), datetime(1950, 1, 2, tzinfo=UTC))  # the check finds nothing
    async with db.connection() as conn:
        await bulk.prepare_connection(conn)
        async with conn.transaction():
            stored = await bulk.store_rows(conn, owner, rows.finish(), 3, merge=False, starts=far_away)
    assert (stored.inserted, stored.duplicates) == (2, 1)
    assert await db.fetchrow("SELECT count(*) AS n FROM qsos WHERE owner_id = %s", [owner]) == {"n": 3}


async def test_rows_the_database_cannot_hold_are_rejected_not_fatal(db: Database):
    owner = await new_owner(db, "W1AW")
    data = adi(QSO, {**QSO, "CALL": "K1ABC", "NAME": "a\x00b"}, {**QSO, "CALL": "K2ABC", "MODE": "X" * 100})
    result = await import_bytes(db, owner, data)
    assert (result.inserted, result.rejected) == (1, 2)
    assert [(r["record"], r["field"]) for r in result.rejects] == [(2, "NAME"), (3, "MODE")]


async def test_merge_updates_qsl_fields_of_matching_qsos(db: Database):
    """The QSOs of a real LoTW report logged first without any QSL field; then the report itself:
    a plain import skips the matches, a merging one confirms them (LOTW_QSL_RCVD becomes Y)."""
    lotw = (TESTDATA / "lotwreport_k9cts.adi").read_bytes()
    key_fields = ("CALL", "QSO_DATE", "TIME_ON", "BAND", "MODE", "SUBMODE")
    logged = adi(*({k: v for k, v in e.fields.items() if k in key_fields}
                   for e in parse_bytes(lotw) if isinstance(e, Record)))
    plain, merging = await new_owner(db, "K9CTS"), await new_owner(db, "K9CTS/P")
    for owner in (plain, merging):
        assert (await import_bytes(db, owner, logged)).inserted == 437
    skipped = await import_bytes(db, plain, lotw)
    merged = await import_bytes(db, merging, lotw, merge=True)
    assert (skipped.inserted, skipped.duplicates, skipped.merged) == (0, 438, 0)
    assert (merged.inserted, merged.duplicates, merged.merged) == (0, 1, 437)
    confirmed = "SELECT count(*) AS n FROM qsos WHERE owner_id = %s AND lotw_qsl_rcvd = 'Y' AND qsl_rcvd IS NULL"
    assert await db.fetchrow(confirmed, [merging]) == {"n": 437}
    assert await db.fetchrow(confirmed, [plain]) == {"n": 0}
    assert merged.up_to_date == 0
    again = await import_bytes(db, merging, lotw, merge=True)  # nothing changes: up to date, not merges
    assert (again.merged, again.inserted, again.duplicates, again.up_to_date) == (0, 0, 1, 437)


async def test_merge_keeps_fields_the_report_does_not_set(db: Database):
    owner = await new_owner(db, "W1AW")
    await import_bytes(db, owner, adi({**QSO, "QSL_SENT": "Y", "QSLSDATE": "20240105"}))
    report = b"ARRL Logbook of the World Status Report\n<PROGRAMID:4>LoTW<eoh>\n" + adi(
        {**QSO, "QSL_RCVD": "Y", "QSLRDATE": "20240201"}) + b"<APP_LoTW_EOF>\n"
    result = await import_bytes(db, owner, report, merge=True)
    assert (result.merged, result.inserted, result.warning_count) == (1, 0, 0)
    row = await db.fetchrow("SELECT qsl_sent, qsl_rcvd, lotw_qsl_rcvd, lotw_qslrdate::text AS d FROM qsos")
    assert row == {"qsl_sent": "Y", "qsl_rcvd": None, "lotw_qsl_rcvd": "Y", "d": "2024-02-01"}


async def test_merge_with_a_qso_twice_in_the_report_takes_the_later_record(db: Database):
    """One merge statement may touch a QSO once: within a batch the later record of a QSO wins, for a
    stored QSO (merged once, the other counted a duplicate) and for a new one (inserted once)."""
    owner = await new_owner(db, "W1AW")
    await import_bytes(db, owner, adi(QSO))
    new_qso = {**QSO, "CALL": "K1ABC"}
    report = adi({**QSO, "LOTW_QSL_RCVD": "Y", "LOTW_QSLRDATE": "20240201"},
                 {**new_qso, "LOTW_QSL_RCVD": "Y", "LOTW_QSLRDATE": "20240202"},
                 {**QSO, "LOTW_QSL_RCVD": "Y", "LOTW_QSLRDATE": "20240301"},
                 {**new_qso, "LOTW_QSL_RCVD": "Y", "LOTW_QSLRDATE": "20240302"})
    result = await import_bytes(db, owner, report, merge=True)
    assert (result.inserted, result.merged, result.duplicates) == (1, 1, 2)
    rows = await db.fetch("SELECT call, lotw_qslrdate::text AS d FROM qsos WHERE owner_id = %s ORDER BY call",
                          [owner])
    assert rows == [{"call": "K1ABC", "d": "2024-03-02"}, {"call": "W1AW", "d": "2024-03-01"}]


def _account(data: bytes, cuts: list[int], skip: int = 0) -> tuple[list[bytes], list[tuple[int, str]], int]:
    maker = BatchMaker(1, batch_records=7, skip_through=skip)
    batches: list[Batch] = []
    previous = 0
    for cut in [*sorted(cuts), len(data)]:
        maker.feed(data[previous:cut])
        previous = cut
        batches.extend(maker.batches())
    maker.close()
    batches.extend(maker.batches())
    assert batches[-1].final and all(not b.final for b in batches[:-1])
    for before, after in zip(batches, batches[1:], strict=False):
        assert after.first_record == before.last_record + 1
    rows = sum(b.rows for b in batches)
    rejects = [(r["record"], r["reason"]) for b in batches for r in b.rejects]
    assert rows + len(rejects) == batches[-1].last_record - skip
    return [b.data for b in batches if b.rows], rejects, rows


SAMPLE = (b"header\n<PROGRAMID:4>test<EOH>\n" + b"".join(synthetic_records(20))
          + adi({"CALL": "N0CALL"}, QSO) + b"".join(synthetic_records(5, seed=2)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, len(SAMPLE)), max_size=6))
def test_batches_do_not_depend_on_chunking(cuts: list[int]):
    whole_rows, whole_rejects, _ = _account(SAMPLE, [])
    rows, rejects, _ = _account(SAMPLE, cuts)
    assert rejects == whole_rejects == [(21, "missing")]
    assert b"".join(rows) != b"" and len(rows) == len(whole_rows)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 27))
def test_skip_through_emits_exactly_the_rest(skip: int):
    _, rejects, rows = _account(SAMPLE, [100, 2000], skip=skip)
    assert rows + len(rejects) == 27 - skip


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=3))
def test_any_bytes_are_accounted_for(data: bytes, cuts: list[int]):
    _account(data, [c for c in cuts if c <= len(data)])


def test_encoded_rows_are_a_complete_binary_copy_stream():
    row = normalize(QSO)
    assert isinstance(row, Qso)
    rows = CopyRows(1)
    rows.add(row)
    rows.add(row)
    data = rows.finish()
    assert data.startswith(b"PGCOPY\n\xff\r\n\x00") and data.endswith(b"\xff\xff")
