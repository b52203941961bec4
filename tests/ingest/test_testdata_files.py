"""Every real ADIF file in shared/testdata: pinned record, accept and reject counts.

Record counts were checked against `grep -ci '<eor>'` (and `</RECORD>` for ADX); cqgma has no <EOR>
at all, so its whole body is one unterminated record. A new testdata file must be added here on purpose.
"""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from hamsrv.ingest.adif import Header, LotwEof, ParseProblem, Record, is_lotw_report, parse_bytes
from hamsrv.ingest.normalize import Reject, normalize
from tests import testdata

TESTDATA = testdata.TESTDATA / "adif"

NO_CALL_3_4_5 = [(3, "CALL", "missing"), (4, "CALL", "missing"), (5, "CALL", "missing")]

# file: (records, accepted, parse problems, ends with LoTW EOF, rejects as [(record, field, reason)]
#        or, for files with many, {field: count})
EXPECTED: dict[str, tuple[int, int, int, bool, list[tuple[int, str, str]] | dict[str, int]]] = {
    "adif_org_316_test_QSOs_2025_08_27.adi": (6191, 6191, 0, False, []),
    "adif_spec_sample_userdef.adi": (2, 2, 0, False, []),
    "adif_spec_sample_userdef.adx": (2, 2, 0, False, []),
    "adifmaster_ft8.adi": (126, 126, 0, False, []),
    # bogus lengths in the header (PROGRAMID:14 for "Cloudlog"); 15 records of empty fields; FREQ
    # -556636544 and 22 more that fit no unit of their BAND (most FREQs are in Hz: read as such);
    # 11 GRIDSQUAREs that are no locator; QSL_RCVD "0"
    "cloudlog_backup_logbook.adi": (3546, 3496, 2, False, {"CALL": 15, "FREQ": 23, "GRIDSQUARE": 11,
                                                           "QSL_RCVD": 1}),
    "cloudlog_log_noheader_typed.adi": (708, 708, 0, False, []),
    "cloudlog_lotwreport6.adi": (1993, 1993, 0, True, []),
    # no <EOR>, fields without '<': one record, repeated fields and the missing <EOR> reported
    "cqgma_malformed_header.adi": (1, 0, 2, False, [(1, "CALL", "missing")]),
    "csn_sat_log.adi": (24, 24, 0, False, []),
    "dl1hw_excel_converter.adi": (15, 15, 0, False, []),
    "fle_rsgb_contest.adi": (67, 67, 0, False, []),
    "hamrs_pota.adi": (1, 1, 0, False, []),
    "js8call_export.adi": (1, 1, 0, False, []),
    "log4om2_export.adi": (122, 122, 0, False, []),
    "loghx_single.adi": (1, 1, 1, False, []),  # <OPERATOR:7>M0NOM <MY_GRIDSQUARE...: cut and reported
    "lotw_detailed_single.adi": (1, 1, 0, True, []),
    "lotw_qslcards_dxcc_report.adi": (1, 1, 0, False, []),  # a DXCC credit: no TIME_ON, stored at 00:00
    "lotwreport_k5dru_crlf.adi": (2899, 2899, 0, True, []),
    "lotwreport_k9cts.adi": (438, 438, 0, True, []),
    "minos_vhf_contest.adi": (45, 45, 0, False, []),
    "n3fjp_aclog_export.adi": (438, 438, 0, False, []),
    "pota_no_header.adi": (49, 49, 0, False, []),
    # neither BAND nor FREQ: a QSO needs one of them
    "pyadif_badfile1_nonascii_in_ascii_field.adx": (2, 0, 0, False, [(1, "BAND", "needs"), (2, "BAND", "needs")]),
    "pyadif_goodfile.adx": (2, 0, 0, False, [(1, "BAND", "needs"), (2, "BAND", "needs")]),
    "pyadif_latin1.adi": (5, 2, 0, False, NO_CALL_3_4_5),
    "pyadif_no_header.adi": (5, 2, 0, False, NO_CALL_3_4_5),
    "pyadif_two_headers.adi": (5, 2, 0, False, NO_CALL_3_4_5),
    "pyadif_utf8_charlen.adi": (5, 2, 0, False, NO_CALL_3_4_5),
    "qle_bad_gridsquare.adi": (43, 42, 0, False, [(25, "GRIDSQUARE", "'IN2dp' is not a Maidenhead")]),
    "qlog_all_fields_example.adi": (1, 1, 0, False, []),
    "qlog_export.adi": (1, 1, 0, False, []),
    # BAND_RX 40m beside FREQ_RX 145.825 (a satellite uplink typed wrong)
    "qrz_logbook_k9cts.adi": (931, 929, 0, False, [(324, "FREQ_RX", "not in the 40m band"),
                                                   (325, "FREQ_RX", "not in the 40m band")]),
    "qrz_logbook_m0nom_4567.adi": (4567, 4565, 0, False, [(4173, "MY_GRIDSQUARE", "'IO84OI38FN' is not"),
                                                          (4537, "GRIDSQUARE", "'VERTICALMF' is not")]),
    "skcclogger_export.adi": (15, 15, 0, False, []),
    "wsjtx_261_dl8obf_crlf.adi": (185, 185, 0, False, []),
    # a release candidate: FREQ and BAND that disagree, FT2 (no ADIF mode), an end before the start
    "wsjtx_300rc1_m7pxz.adi": (1700, 1692, 0, False, {"FREQ": 4, "MODE": 3, "TIME_OFF": 1}),
    "wsjtx_logged_adif.adi": (1, 1, 0, False, []),
}


def test_every_testdata_file_is_listed():
    assert sorted(p.name for p in TESTDATA.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_file(name: str):
    n_records, n_accepted, n_problems, lotw_eof, rejects = EXPECTED[name]
    events = parse_bytes((TESTDATA / name).read_bytes())
    header = next((e for e in events if isinstance(e, Header)), None)
    records = [e for e in events if isinstance(e, Record)]
    results = [(r.number, normalize(r.fields, lotw_report=is_lotw_report(header))) for r in records]
    rejected = [(number, r.field, r.reason) for number, r in results if isinstance(r, Reject)]
    assert len(records) == n_records
    assert [r.number for r in records] == list(range(1, n_records + 1))
    assert len(records) - len(rejected) == n_accepted
    assert sum(isinstance(e, ParseProblem) for e in events) == n_problems
    assert isinstance(events[-1], LotwEof) is lotw_eof
    if isinstance(rejects, dict):
        assert Counter(field for _, field, _ in rejected) == rejects
    else:
        assert [(n, f) for n, f, _ in rejected] == [(n, f) for n, f, _ in rejects]
        assert all(expected in reason for (_, _, reason), (_, _, expected) in zip(rejected, rejects, strict=True))


def test_lotw_reports_put_confirmations_in_lotw_columns():
    events = parse_bytes((TESTDATA / "lotw_detailed_single.adi").read_bytes())
    header = events[0]
    assert isinstance(header, Header) and is_lotw_report(header)
    [record] = [e for e in events if isinstance(e, Record)]
    row = normalize(record.fields, lotw_report=True)
    assert not isinstance(row, Reject)
    assert (row.lotw_qsl_rcvd, row.lotw_qslrdate, row.qsl_rcvd) == ("Y", date(2021, 6, 15), None)
    assert (row.call, row.band, row.extra["STATE"]) == ("NR0Q", "30m", "MO")  # " // Missouri" dropped


def test_a_lotw_dxcc_credit_report_imports_its_confirmations():
    """Issue 14: qslcards.php lists credited QSOs without TIME_ON or MODE: a confirmation by call, band,
    mode group and date, with a note saying the time is unknown."""
    events = parse_bytes((TESTDATA / "lotw_qslcards_dxcc_report.adi").read_bytes())
    [record] = [e for e in events if isinstance(e, Record)]
    row = normalize(record.fields)
    assert not isinstance(row, Reject)
    assert (row.call, row.band, row.mode, row.dxcc, row.lotw_qsl_rcvd) == ("VA1RJR", "17m", None, 1, "Y")
    assert row.start_at.isoformat() == "2023-02-16T00:00:00+00:00"
    assert row.extra["APP_LOTW_MODEGROUP"] == "DATA" and "no time of day" in row.extra["APP_HAMSRV_NOTE"]
    plain = normalize({k: v for k, v in record.fields.items() if not k.startswith("APP_LOTW_")})
    assert isinstance(plain, Reject) and plain.field == "TIME_ON"  # other records still need TIME_ON
