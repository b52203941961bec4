"""LoTW reports and eQSL inbox answers read without I/O: success with the real reports, the login page,
truncated files, empty results; never anything but a result or a QslError, whatever the bytes."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hamsrv.sync import eqsl, lotw
from hamsrv.sync.confirmations import Confirmation, QslError, confirmation_from_fields
from tests.sync.samples import (
    EQSL_BAD_LOGIN_PAGE,
    EQSL_EMPTY_PAGE,
    EQSL_ERROR_PAGE,
    LOTW_2E0SQL,
    LOTW_K9CTS,
    LOTW_LOGIN_PAGE,
    eqsl_built_page,
    eqsl_inbox_file,
    lotw_records,
    senders_view,
)

K9CTS = LOTW_K9CTS.read_bytes()
EOF_AT = K9CTS.index(b"<APP_LoTW_EOF>")
EMPTY_REPORT = (b"ARRL Logbook of the World Status Report\nGenerated at 2024-05-02 10:00:00\nfor w1aw\nQuery:\n"
                b"    QSL ONLY: YES\nQSL RX SINCE: 2024-05-01 00:00:00 (user supplied value)\n\n"
                b"<PROGRAMID:4>LoTW\n<APP_LoTW_LASTQSL:19>2024-05-01 00:00:00\n\n<APP_LoTW_NUMREC:1>0\n\n"
                b"<eoh>\n<APP_LoTW_EOF>\n")


def test_the_real_reports_give_every_confirmation_and_the_resume_point() -> None:
    report = lotw.read_report(K9CTS)
    assert report.last_qsl == "2022-06-02 23:31:22" and len(report.records) == 438
    other = lotw.read_report(LOTW_2E0SQL.read_bytes())  # lower-case tags, no FREQ, no MODEGROUP
    assert other.last_qsl == "2013-02-14 19:40:58" and len(other.records) == 1993
    confs = [confirmation_from_fields("lotw", r.fields, date(2024, 1, 1)) for r in report.records]
    assert all(isinstance(c, Confirmation) for c in confs)
    first = confs[0]
    assert isinstance(first, Confirmation)
    assert (first.call, first.band, first.mode_group, first.qsl_date) == ("N5ILQ", "20m", "CW", date(2022, 6, 2))


def test_the_login_page_is_a_refused_password() -> None:
    with pytest.raises(QslError, match="LoTW refused the password") as caught:
        lotw.read_report(LOTW_LOGIN_PAGE)
    assert caught.value.kind == "login"


def test_a_report_without_its_end_marker_is_truncated() -> None:
    with pytest.raises(QslError, match="cut off") as caught:
        lotw.read_report(K9CTS[:EOF_AT])
    assert caught.value.kind == "truncated"


def test_an_empty_result_is_a_success_with_nothing_in_it() -> None:
    report = lotw.read_report(EMPTY_REPORT)
    assert report.records == [] and report.last_qsl == "2024-05-01 00:00:00"


def test_the_query_resumes_from_the_last_report() -> None:
    assert lotw.report_query("w1aw", "pw", None)["qso_qslsince"] == lotw.FIRST_SINCE
    query = lotw.report_query("w1aw", "pw", "2022-06-02 23:31:22")
    assert query == {"login": "w1aw", "password": "pw", "qso_query": "1", "qso_qsl": "yes",
                     "qso_qslsince": "2022-06-02 23:31:22"}


@settings(max_examples=60, deadline=None)
@given(st.integers(0, EOF_AT))
def test_any_cut_before_the_end_marker_is_refused(cut: int) -> None:
    with pytest.raises(QslError) as caught:
        lotw.read_report(K9CTS[:cut])
    long_enough = cut >= len(b"ARRL Logbook of the World Status Report")
    assert caught.value.kind == ("truncated" if long_enough else "unexpected")


@given(st.binary(max_size=3000))
def test_any_bytes_give_a_report_or_a_qsl_error(body: bytes) -> None:
    for read in (lotw.read_report, eqsl.read_inbox_page, eqsl.read_inbox_file):
        try:
            read(body)
        except QslError as exc:
            assert str(exc) and exc.kind in ("login", "down", "timeout", "truncated", "unexpected")


RECORD = st.fixed_dictionaries({
    "CALL": st.sampled_from(["W1AW", "DL1ABC/P", "VP2E/K1ABC"]),
    "QSO_DATE": st.dates(date(1990, 1, 1), date(2030, 12, 31)).map(lambda d: d.strftime("%Y%m%d")),
    "TIME_ON": st.times().map(lambda t: t.strftime("%H%M%S")),
    "BAND": st.sampled_from(["20M", "40M", "2M", "70CM"]),
    "MODE": st.sampled_from(["SSB", "CW", "FT8", "JT65"]),
    "QSL_RCVD": st.just("Y"),
    "QSLRDATE": st.just("20240501"),
})


@given(st.lists(RECORD, max_size=20), st.sampled_from([b"\n", b"\r\n"]))
def test_generated_reports_read_back_record_for_record(records: list[dict[str, str]], newline: bytes) -> None:
    body = EMPTY_REPORT.replace(b"<APP_LoTW_EOF>\n", b"")
    for fields in records:
        body += b"".join(f"<{k}:{len(v)}>{v}".encode() + newline for k, v in fields.items()) + b"<eor>" + newline
    body += b"<APP_LoTW_EOF>" + newline
    report = lotw.read_report(body.replace(b"\n", newline))
    assert [r.fields for r in report.records] == records


# ------------------------------------------------------------------------------------------ eQSL
def test_the_built_page_names_the_file_to_fetch() -> None:
    assert eqsl.read_inbox_page(eqsl_built_page("w1aw123")) == "../downloadedfiles/w1aw123.adi"


def test_eqsl_pages_for_a_bad_login_an_empty_inbox_and_an_error() -> None:
    with pytest.raises(QslError, match="eQSL refused the username or password") as caught:
        eqsl.read_inbox_page(EQSL_BAD_LOGIN_PAGE)
    assert caught.value.kind == "login"
    assert eqsl.read_inbox_page(EQSL_EMPTY_PAGE) is None
    with pytest.raises(QslError, match="eQSL said: Error: RcvdSince must be YYYYMMDDHHMM"):
        eqsl.read_inbox_page(EQSL_ERROR_PAGE)
    with pytest.raises(QslError, match="names no ADIF file"):
        eqsl.read_inbox_page(b"<html><body>Welcome</body></html>")


def test_the_inbox_file_gives_the_senders_records_but_no_swl_reports() -> None:
    views = [senders_view(r) for r in lotw_records()[:50]]
    swl = {**views[0], "CALL": "DE1SWL", "APP_EQSL_SWL": "Y"}
    records = eqsl.read_inbox_file(eqsl_inbox_file([*views, swl]))
    assert [r.fields for r in records] == views
    confs = [confirmation_from_fields("eqsl", r.fields, date(2024, 5, 2)) for r in records]
    assert all(isinstance(c, Confirmation) and c.qsl_date == date(2024, 5, 2) for c in confs)
    assert eqsl.read_inbox_file(eqsl_inbox_file([])) == []


def test_a_cut_inbox_file_or_a_page_instead_of_it_is_refused() -> None:
    whole = eqsl_inbox_file([senders_view(r) for r in lotw_records()[:5]])
    with pytest.raises(QslError, match="cut off") as caught:
        eqsl.read_inbox_file(whole[:-20])
    assert caught.value.kind == "truncated"
    with pytest.raises(QslError, match="not an ADIF file"):
        eqsl.read_inbox_file(EQSL_BAD_LOGIN_PAGE)


@given(st.text(alphabet="abcdefghij0123456789", min_size=1, max_size=30), st.text(max_size=200))
def test_the_link_is_found_in_any_surrounding_text(name: str, noise: str) -> None:
    page = noise.replace("<", " ").encode() + eqsl_built_page(name) + noise.replace("<", " ").encode()
    assert eqsl.read_inbox_page(page) == f"../downloadedfiles/{name}.adi"


def test_rcvd_since_format() -> None:
    from datetime import UTC, datetime
    assert eqsl.since_text(datetime(2024, 5, 2, 7, 5, 59, tzinfo=UTC)) == "202405020705"
    assert eqsl.inbox_query("W1AW", "pw", None) == {"UserName": "W1AW", "Password": "pw"}
    assert eqsl.inbox_query("W1AW", "pw", "202405020705")["RcvdSince"] == "202405020705"
