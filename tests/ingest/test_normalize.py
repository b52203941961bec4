"""Record fields -> qsos rows and back, including round trips through the ADI and ADX writers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hamsrv.ingest.adif import Header, Record, is_lotw_report, parse_bytes, write_adi, write_adx
from hamsrv.ingest.normalize import (
    ACTIVE_MODES,
    QSO_COLUMNS,
    SUBMODE_PARENT,
    Qso,
    Reject,
    normalize,
    to_fields,
)
from tests import testdata

TESTDATA = testdata.TESTDATA / "adif"
BASE = {"CALL": "w1aw", "QSO_DATE": "20240102", "TIME_ON": "1305", "BAND": "20m"}


def qso(**fields: str) -> Qso:
    row = normalize({**BASE, **fields})
    assert isinstance(row, Qso), row
    return row


def test_columns_are_the_table_columns_in_order():
    assert Qso._fields == QSO_COLUMNS
    assert len(set(QSO_COLUMNS)) == len(QSO_COLUMNS) == 29


def test_minimal_record():
    row = qso()
    assert row.call == "W1AW"
    assert row.start_at == datetime(2024, 1, 2, 13, 5, tzinfo=UTC)
    assert row.end_at is None and row.band == "20m" and row.freq is None
    # filled from cty.dat, as spots are
    assert (row.dxcc, row.extra) == (291, {"COUNTRY": "United States", "CONT": "NA", "CQZ": "5"})


def test_end_time_crosses_midnight_without_qso_date_off():
    assert qso(TIME_ON="235500", TIME_OFF="0100").end_at == datetime(2024, 1, 3, 1, 0, tzinfo=UTC)
    assert qso(TIME_OFF="1310").end_at == datetime(2024, 1, 2, 13, 10, tzinfo=UTC)
    row = qso(TIME_OFF="0100", QSO_DATE_OFF="20240105")
    assert row.end_at == datetime(2024, 1, 5, 1, 0, tzinfo=UTC) and "QSO_DATE_OFF" not in row.extra
    assert qso(QSO_DATE_OFF="20240105").extra["QSO_DATE_OFF"] == "20240105"  # no TIME_OFF: kept as is


def test_a_frequency_of_400_digits_is_refused_not_infinite():
    """Issue 10: FREQ of 309+ digits became inf, which later crashed the QSO listener (round(inf))."""
    rejected = normalize({**BASE, "FREQ": "9" * 400})
    assert isinstance(rejected, Reject) and rejected.field == "FREQ"
    assert isinstance(normalize({**BASE, "FREQ_RX": "1" * 400 + ".5"}), Reject)


def test_band_from_frequency_and_canonical_case():
    assert qso(FREQ="14.074", BAND="").band == "20m"
    assert qso(FREQ="54.000", BAND="").band == "6m"
    assert qso(BAND="20M", FREQ="14.074").band == "20m"
    row = qso(FREQ_RX="145.900", BAND_RX="")
    assert row.band_rx == "2m" and row.freq_rx == 145.9


@pytest.mark.parametrize(("mode", "submode", "expected"), [
    ("PSK31", "", ("PSK", "PSK31")), ("JT65A", "", ("JT65", "JT65A")), ("C4FM", "", ("DIGITALVOICE", "C4FM")),
    ("DSTAR", "", ("DIGITALVOICE", "DSTAR")), ("FT4", "", ("MFSK", "FT4")), ("PCW", "", ("CW", "PCW")),
    ("USB", "", ("SSB", "USB")), ("lsb", "", ("SSB", "LSB")), ("ft8", "", ("FT8", None)),
    ("SSB", "USB", ("SSB", "USB")), ("PSK31", "PSK63", ("PSK", "PSK63")), ("", "js8", ("MFSK", "JS8")),
    ("VARA HF", "", ("DYNAMIC", "VARA HF"))
])
def test_modes(mode: str, submode: str, expected: tuple[str, str | None]):
    row = qso(MODE=mode, SUBMODE=submode)
    assert (row.mode, row.submode) == expected


def test_mode_table_is_consistent():
    assert all(parent in ACTIVE_MODES for parent in SUBMODE_PARENT.values())
    assert "MFSK128" in SUBMODE_PARENT and "MFSK128L" in SUBMODE_PARENT


@pytest.mark.parametrize("call", ["W1AW", "vp2e/w1aw/p", "4U1UN", "3DA0RU", "9A3ST", "M0NOM/P", "W1AW/MM",
                                  "DL/PA3XYZ", "E51DWC"])
def test_good_calls(call: str):
    assert qso(CALL=call).call == call.upper()


@pytest.mark.parametrize(("fields", "field", "reason"), [
    ({"CALL": ""}, "CALL", "missing"), ({"CALL": "  "}, "CALL", "missing"),
    ({"CALL": "QRZ"}, "CALL", "not a callsign"), ({"CALL": "1234"}, "CALL", "not a callsign"),
    ({"CALL": "W1AW//P"}, "CALL", "not a callsign"), ({"CALL": "W1 AW"}, "CALL", "not a callsign"),
    ({"CALL": "/W1AW"}, "CALL", "not a callsign"), ({"CALL": "W1AW-5"}, "CALL", "not a callsign"),
    ({"QSO_DATE": ""}, "QSO_DATE", "missing"), ({"TIME_ON": ""}, "TIME_ON", "missing"),
    ({"QSO_DATE": "19291231"}, "QSO_DATE", "start in 1930"),
    ({"QSO_DATE": "20241301"}, "QSO_DATE", "not a valid date"),
    ({"QSO_DATE": "20230229"}, "QSO_DATE", "not a valid date"),
    ({"QSO_DATE": "2024-01-02"}, "QSO_DATE", "not a date"),
    ({"TIME_ON": "2400"}, "TIME_ON", "not a valid time"), ({"TIME_ON": "12345"}, "TIME_ON", "not a time"),
    ({"TIME_ON": "1305001"}, "TIME_ON", "not a time"), ({"TIME_OFF": "13 5"}, "TIME_OFF", "not a time"),
    ({"TIME_OFF": "1261"}, "TIME_OFF", "not a valid time"),
    ({"QSO_DATE_OFF": "20240231"}, "QSO_DATE_OFF", "not a valid date"),
    ({"QSLRDATE": "00000000"}, "QSLRDATE", "start in 1930"),
    ({"FREQ": "14,074"}, "FREQ", "not a frequency"), ({"FREQ": "-556636544"}, "FREQ", "not a frequency"),
    ({"FREQ": "1e3"}, "FREQ", "not a frequency"), ({"FREQ_RX": "nan"}, "FREQ_RX", "not a frequency"),
    ({"FREQ": "."}, "FREQ", "not a frequency"), ({"FREQ": "14.0.1"}, "FREQ", "not a frequency"),
    ({"FREQ": "\uff11\uff14"}, "FREQ", "not a frequency"), ({"FREQ": "+14"}, "FREQ", "not a frequency"),
    ({"BAND": "20"}, "BAND", "not an ADIF band"), ({"BAND_RX": "11m"}, "BAND_RX", "not an ADIF band"),
    ({"QSL_RCVD": "0"}, "QSL_RCVD", "not one of"), ({"LOTW_QSL_SENT": "V"}, "LOTW_QSL_SENT", "not one of"),
    ({"DXCC": "USA"}, "DXCC", "not a DXCC entity"),
    # issue 14: what a logger checks
    ({"BAND": "20m", "FREQ": "7.1"}, "FREQ", "not in the 20m band"),
    ({"BAND": "", "FREQ": "3.0"}, "FREQ", "not in an amateur band"),
    ({"BAND_RX": "2m", "FREQ_RX": "432.1"}, "FREQ_RX", "not in the 2m band"),
    ({"BAND": ""}, "BAND", "needs a BAND or a FREQ"),
    ({"MODE": "BANANA"}, "MODE", "not an ADIF mode"), ({"MODE": "DATA"}, "MODE", "not an ADIF mode"),
    ({"SUBMODE": "WOBBLE"}, "SUBMODE", "not an ADIF submode"),
    ({"MODE": "CW", "SUBMODE": "USB"}, "SUBMODE", "submode of SSB"),
    ({"GRIDSQUARE": "FN3"}, "GRIDSQUARE", "Maidenhead"), ({"GRIDSQUARE": "VERTICALMF"}, "GRIDSQUARE", "Maidenhead"),
    ({"MY_GRIDSQUARE": "ZZ00"}, "MY_GRIDSQUARE", "Maidenhead"),
    ({"QSO_DATE_OFF": "20240101", "TIME_OFF": "1400"}, "TIME_OFF", "ends before it starts"),
    ({"QSO_DATE": "20990101"}, "QSO_DATE", "in the future"),
    ({"COMMENT": "x" * (64 * 1024 + 1)}, "COMMENT", "longer than"),
    ({f"APP_X_F{i}": "1" for i in range(1000)}, "APP_X_F996", "at most 1000 fields"),
])
def test_rejects_name_the_field(fields: dict[str, str], field: str, reason: str):
    result = normalize({**BASE, **fields})
    assert isinstance(result, Reject) and result.field == field and reason in result.reason


def test_what_a_logger_accepts():
    assert qso(GRIDSQUARE="fn31PR", MY_GRIDSQUARE="JO62").gridsquare == "fn31PR"
    assert qso(FREQ="54.000001", BAND="6m").band == "6m"  # the ADIF test file's edge value
    assert qso(FREQ="14074000").freq == 14.074 and qso(FREQ="14074").freq == 14.074  # Hz, kHz beside BAND
    assert qso(DXCC="1").dxcc == 1 and "COUNTRY" not in qso(DXCC="1").extra  # kept; no fill from another entity
    assert qso(CALL="DL1ABC", COUNTRY="Germany").extra == {"COUNTRY": "Germany", "CONT": "EU", "CQZ": "14"}
    lotw = normalize({**BASE, "MODE": "DATA"}, lotw_report=True)  # LoTW's mode group
    assert isinstance(lotw, Qso) and lotw.mode is None and lotw.extra["APP_LOTW_MODEGROUP"] == "DATA"


def test_times_and_frequencies_in_every_accepted_form():
    start = datetime(2024, 1, 2, 13, 5, tzinfo=UTC)
    assert qso(TIME_ON=" 1305 ").start_at == qso(TIME_ON="130500").start_at == start
    assert qso(TIME_ON="235959").start_at == datetime(2024, 1, 2, 23, 59, 59, tzinfo=UTC)
    assert (qso(FREQ=".475", BAND="630m").freq, qso(FREQ="14.", BAND="").freq, qso(FREQ=" 14.074 ").freq) == (
        0.475, 14.0, 14.074)


def test_remembered_conversions_keep_field_names_and_reject_every_time():
    for _ in range(2):  # the second round would use what the first remembered
        for field in ("QSLSDATE", "QSLRDATE", "QSO_DATE_OFF"):
            result = normalize({**BASE, field: "2024"})
            assert isinstance(result, Reject) and result.field == field
        assert qso(QSLSDATE="20240110").qslsdate == qso(QSLRDATE="20240110").qslrdate == date(2024, 1, 10)


def test_many_distinct_values_stay_correct():
    """More distinct dates than a memo holds: it is cleared and refilled, never stale."""
    first = date(1990, 1, 1)
    for offset in range(9000):
        day = first + timedelta(days=offset)
        assert qso(QSO_DATE=day.strftime("%Y%m%d")).start_at.date() == day


def test_typed_values_and_extra():
    row = qso(RST_SENT=" 599 ", STATION_CALLSIGN="m0nom/p", OPERATOR="m0nom", DXCC="291", QSL_SENT="y",
              QSLSDATE="20240110", EQSL_QSL_RCVD="V", NAME=" Jörg ", APP_N1MM_ID="x", COMMENT="")
    assert (row.rst_sent, row.station_callsign, row.operator, row.dxcc) == ("599", "M0NOM/P", "M0NOM", 291)
    assert (row.qsl_sent, row.qslsdate, row.eqsl_qsl_rcvd) == ("Y", date(2024, 1, 10), "V")
    assert row.extra == {"NAME": " Jörg ", "APP_N1MM_ID": "x",  # kept verbatim; empty fields dropped
                         "COUNTRY": "United States", "CONT": "NA", "CQZ": "5"}


def test_lotw_report_maps_qsl_rcvd_to_lotw_columns():
    fields = {**BASE, "QSL_RCVD": "Y", "QSLRDATE": "20240105"}
    row = normalize(fields, lotw_report=True)
    assert isinstance(row, Qso)
    assert (row.lotw_qsl_rcvd, row.lotw_qslrdate, row.qsl_rcvd, row.qslrdate) == ("Y", date(2024, 1, 5), None, None)
    plain = normalize(fields)
    assert isinstance(plain, Qso) and (plain.qsl_rcvd, plain.lotw_qsl_rcvd) == ("Y", None)


def test_to_fields_writes_utc_and_plain_numbers():
    row = qso(TIME_OFF="0100", DXCC="1")._replace(freq=0.00001,
        start_at=datetime(2024, 1, 2, 15, 5, tzinfo=timezone(timedelta(hours=2))))
    fields = to_fields(row)
    assert (fields["QSO_DATE"], fields["TIME_ON"], fields["FREQ"]) == ("20240102", "130500", "0.00001")
    assert (fields["QSO_DATE_OFF"], fields["TIME_OFF"], fields["DXCC"]) == ("20240103", "010000", "1")


# ------------------------------------------------------------------------------------ round trips
def _through(fields: dict[str, str], fmt: str) -> dict[str, str]:
    write = write_adi if fmt == "adi" else write_adx
    [record] = [e for e in parse_bytes(b"".join(write(None, [fields]))) if isinstance(e, Record)]
    return record.fields


CALLS = st.from_regex(r"[A-Z]{1,2}[0-9][A-Z]{1,3}(/[A-Z0-9]{1,3})?", fullmatch=True)
DATES = st.dates(date(1930, 1, 1), date(2024, 12, 31)).map(lambda d: d.strftime("%Y%m%d"))
TIMES = st.times().map(lambda t: t.strftime("%H%M%S")) | st.times().map(lambda t: t.strftime("%H%M"))
FREQS = st.floats(14.0, 14.35, allow_nan=False).map(repr).filter(lambda t: "e" not in t)
MODES = st.sampled_from(["FT8", "PSK31", "USB", "C4FM", "FT4", "CW", "SSB", "JT65A", ""])
EXTRA_NAMES = st.from_regex(r"[A-Z][A-Z0-9_]{0,12}", fullmatch=True).filter(
    lambda n: n not in Qso._fields and n.upper() not in {c.upper() for c in QSO_COLUMNS}
    and n not in ("EOR", "EOH", "APP", "USERDEF", "QSO_DATE", "TIME_ON", "TIME_OFF", "QSO_DATE_OFF")
    and not n.startswith("XML") and not (n.startswith("APP_") and "_" not in n[4:]))
XML_TEXT = st.text(st.characters(blacklist_categories=["Cs", "Cc"], whitelist_characters="\r\n\t",
                                 blacklist_characters="\ufffe\uffff"), min_size=1, max_size=20)
FIELDS = st.fixed_dictionaries(
    {"CALL": CALLS, "QSO_DATE": DATES, "TIME_ON": TIMES, "BAND": st.sampled_from(["20M", "20m"])},
    optional={"TIME_OFF": TIMES, "QSO_DATE_OFF": DATES, "FREQ": FREQS, "FREQ_RX": FREQS, "MODE": MODES,
              "SUBMODE": st.sampled_from(["FT4", "USB", ""]),
              "QSL_RCVD": st.sampled_from("YNRIV"), "QSLRDATE": DATES, "LOTW_QSL_SENT": st.sampled_from("YNRQI"),
              "DXCC": st.integers(0, 999).map(str), "RST_SENT": st.sampled_from(["59", "-12", " 599"]),
              "STATION_CALLSIGN": CALLS, "EQSL_QSLSDATE": DATES})
RECORDS = st.tuples(FIELDS, st.dictionaries(EXTRA_NAMES, XML_TEXT, max_size=4)).map(lambda t: {**t[1], **t[0]})


@settings(max_examples=300)
@given(RECORDS, st.sampled_from(["adi", "adx"]), st.booleans())
def test_row_round_trips_through_export(fields: dict[str, str], fmt: str, lotw: bool):
    row = normalize(fields, lotw_report=lotw)
    assume(not (isinstance(row, Reject) and row.field in ("SUBMODE", "TIME_OFF")))  # another MODE's SUBMODE,
    # an end before the start
    assert isinstance(row, Qso), row
    again = normalize(_through(to_fields(row), fmt))
    assert again == row


FILES = sorted(p.name for p in TESTDATA.iterdir())


@pytest.mark.parametrize("name", FILES)
def test_real_files_round_trip(name: str):
    events = parse_bytes((TESTDATA / name).read_bytes())
    header = next((e for e in events if isinstance(e, Header)), None)
    results = [normalize(e.fields, lotw_report=is_lotw_report(header)) for e in events if isinstance(e, Record)]
    rows = [r for r in results if isinstance(r, Qso)]
    exported = b"".join(write_adi(header, (to_fields(r) for r in rows)))
    again = [normalize(e.fields) for e in parse_bytes(exported) if isinstance(e, Record)]
    assert again == rows
