"""The compiled fast path writes exactly what the Python path writes, or leaves the record to it.

`_fastadi.encode` is compared byte for byte with AdiParser + normalize() + CopyRows on generated
records (good and bad ones), and BatchMaker with and without it on every testdata file."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hamsrv.db.bulk import CopyRows
from hamsrv.ingest import _fastadi
from hamsrv.ingest.adif import DEFAULT_MAX_FIELD_BYTES, DEFAULT_MAX_RECORD_BYTES, AdiParser, Record
from hamsrv.ingest.copy import Batch, BatchMaker
from hamsrv.ingest.normalize import Qso, normalize, use_entities
from hamsrv.model import BANDS
from tests import testdata

OWNER = 42
use_entities(None)  # the bundled cty.dat, in both paths (a server sets its own at start)
_DIGITS = "0123456789"


def fast(text: str, lotw: bool = False, max_records: int = 10**6) -> tuple[int, int, bytes]:
    """(records taken, end position, rows) of the fast path over the whole text."""
    out = bytearray()
    pos, count, *_ = _fastadi.encode(text, 0, max_records, OWNER, lotw, DEFAULT_MAX_FIELD_BYTES,
                                     DEFAULT_MAX_RECORD_BYTES, out)
    return count, pos, bytes(out)


def slow(text: str, lotw: bool = False) -> list[bytes | None]:
    """Per record: its row as the Python path encodes it, None when it is rejected."""
    parser = AdiParser()
    parser.feed(text.encode("latin-1"))
    parser.close()
    rows: list[bytes | None] = []
    for event in parser.events():
        if isinstance(event, Record):
            row = normalize(event.fields, lotw_report=lotw)
            if isinstance(row, Qso):
                one = CopyRows(OWNER)
                one.add(row)
                rows.append(one.finish()[19:-2])  # without signature and trailer
            else:
                rows.append(None)
    return rows


def tag(name: str, value: str) -> str:
    return f"<{name}:{len(value)}>{value}"


def record(fields: list[tuple[str, str]], sep: str = " ") -> str:
    return sep.join(tag(n, v) for n, v in fields) + "<EOR>\n"


def digits(n: int) -> st.SearchStrategy[str]:
    return st.text(_DIGITS, min_size=n, max_size=n)


_ASCII = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="<") | st.just("\t"),
                 max_size=12)
# Non-ASCII values as the parser sees them: the input's bytes as Latin-1 characters (tag lengths count
# bytes). Valid UTF-8, Latin-1 (with and without bytes that could continue a UTF-8 character, which
# only the Python path may judge), and any bytes at all.
_UTF8 = st.text(st.characters(min_codepoint=0x20, exclude_characters="<", exclude_categories=("Cs", "Cc")),
                max_size=8).map(lambda v: v.encode("utf-8").decode("latin-1"))
_LATIN1 = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="<\x7f"),
                  max_size=8)
_BYTES = st.binary(max_size=8).map(lambda v: v.decode("latin-1"))
_TEXT = st.one_of(_ASCII, _UTF8, _LATIN1, _BYTES)
# Values a logger writes, and the near misses the Python path must judge.
CALLS = st.sampled_from(["W1AW", "vp2e/w1aw/p", "DL1ABC", "K1", "2E0XYZ", "/W1AW", "W1AW/", "W1//AW",
                         "ABC", "123", " W1AW", "W1AW-1", "A" * 31 + "1", "A" * 32 + "1"])
DATES = st.one_of(st.dates().map(lambda d: d.strftime("%Y%m%d").zfill(8)), digits(8),
                  st.sampled_from(["19291231", "20240229", "20230229", "99991231", "2024011"]))
TIMES = st.one_of(digits(4), digits(6), digits(5), st.sampled_from(["2400", "2359", "235960", " 1200"]))
BANDS_TEXT = st.sampled_from([name for name, _, _ in BANDS] + ["20M", "2M", "11m", "70CM", " 20m"])
FREQS = st.one_of(st.floats(0.1, 300000, allow_nan=False).map(lambda f: f"{f:.6f}".rstrip("0")),
                  st.sampled_from(["14.074", "7", "5.", ".5", "1.2.3", "", "14,074", "1e3", "28.0000001"]))
MODES = st.sampled_from(["FT8", "ft4", "PSK31", "USB", "SSB", "CW", "JT65A", "OLIVIA 8/250", "DIGITALVOICE",
                         "C4FM", "XYZ", "", "A" * 70])
STATUS = st.sampled_from(["Y", "n", "R", "Q", "I", "V", "YES", "", " "])
KNOWN = {
    "CALL": CALLS, "QSO_DATE": DATES, "TIME_ON": TIMES, "TIME_OFF": TIMES, "QSO_DATE_OFF": DATES,
    "BAND": BANDS_TEXT, "BAND_RX": BANDS_TEXT, "FREQ": FREQS, "FREQ_RX": FREQS, "MODE": MODES, "SUBMODE": MODES,
    "RST_SENT": _ASCII, "RST_RCVD": _ASCII, "GRIDSQUARE": _ASCII,
    "STATION_CALLSIGN": _ASCII, "OPERATOR": _ASCII, "DXCC": st.one_of(digits(3), digits(5), _ASCII),
    "QSL_SENT": STATUS, "QSL_RCVD": STATUS, "LOTW_QSL_RCVD": STATUS, "QSLRDATE": DATES, "LOTW_QSLRDATE": DATES,
    "EQSL_QSLSDATE": DATES, "NAME": _TEXT, "COMMENT": _TEXT, "APP_X_Y": _TEXT, "qth": _TEXT,
    "MY_GRIDSQUARE": _TEXT,
    "COUNTRY": _ASCII, "CONT": st.sampled_from(["EU", "NA", ""]), "CQZ": st.sampled_from(["5", "14", ""]),
}


@st.composite
def any_record(draw: st.DrawFn) -> str:
    names = draw(st.lists(st.sampled_from(sorted(KNOWN)), max_size=12))
    fields = [(draw(st.sampled_from([n, n.lower()])), draw(KNOWN[n])) for n in names]
    required = [("CALL", "W1AW"), ("QSO_DATE", "20240101"), ("TIME_ON", "1200"), ("BAND", "20m"), ("DXCC", "291"),
                ("COUNTRY", "United States"), ("CONT", "NA"), ("CQZ", "5")]
    if draw(st.booleans()):
        fields = required + fields
    return record(fields, draw(st.sampled_from(["", " ", "\r\n", "\n junk "])))


# Latin-1 text the fast path takes: no byte that could continue a UTF-8 character (0x80-0xBF).
_PLAIN_LATIN1 = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="<\x7f",
                                      exclude_categories=("Cc",)).filter(lambda c: not 0x80 <= ord(c) <= 0xBF),
                        max_size=8)


@st.composite
def good_record(draw: st.DrawFn) -> str:
    """A record the fast path must take: everything plain and valid. DXCC, COUNTRY, CONT and CQZ are
    given or not: the fast path fills them from cty.dat as the Python path does (portable calls go to
    the Python path)."""
    day = draw(st.dates(min_value=date(1930, 1, 1), max_value=date.today()))
    fields = [("CALL", draw(st.sampled_from(["W1AW", "dl1abc", "JA1XYZ", "4U1UN", "VP2EAB"]))),
              ("QSO_DATE", day.strftime("%Y%m%d").zfill(8)),
              ("TIME_ON", f"{draw(st.integers(0, 23)):02d}{draw(st.integers(0, 59)):02d}"),
              ("FREQ", draw(st.sampled_from(["14.074", "7.0", "144.300", "0.136"]))),
              ("MODE", draw(st.sampled_from(["FT8", "PSK31", "ssb", "JT65A"]))),
              *draw(st.sampled_from([[], [("DXCC", "291")], [("DXCC", "230"), ("CQZ", "14")]])),
              *draw(st.sampled_from([[], [("COUNTRY", "Somewhere"), ("CONT", "EU")]]))]
    extra = draw(st.dictionaries(st.from_regex(r"[A-Z][A-Z0-9_]{0,15}", fullmatch=True),
                                 st.one_of(_ASCII, _UTF8, _PLAIN_LATIN1), max_size=5))
    fields += [(k, v) for k, v in extra.items() if k not in KNOWN and k.upper() not in KNOWN]
    return record(draw(st.permutations(fields)))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(any_record(), min_size=1, max_size=6), st.booleans())
def test_fast_rows_are_the_python_rows(records: list[str], lotw: bool):
    text = "".join(records)
    count, pos, rows = fast(text, lotw)
    expected = slow(text, lotw)
    assert None not in expected[:count]  # a record the Python path rejects is never taken
    assert rows == b"".join(expected[:count])  # type: ignore[arg-type]
    assert pos == sum(len(r) for r in records[:count]) - (count > 0)  # just after the last <EOR>


@settings(max_examples=200, deadline=None)
@given(st.lists(good_record(), min_size=1, max_size=6), st.booleans())
def test_plain_records_all_take_the_fast_path(records: list[str], lotw: bool):
    text = "".join(records)
    count, pos, rows = fast(text, lotw)
    assert (count, pos) == (len(records), len(text) - 1)
    assert rows == b"".join(slow(text, lotw))  # type: ignore[arg-type]


_PIECES = ["<CALL:4>", "W1AW", "<QSO_DATE:8>", "20240101", "<TIME_ON:4>", "1200", "<EOR>", "<eor>", "\n", " ",
           "<", ">", ":", "x", "\xe9", "\x00", "\xc3\xa9", "\xc3", "\xa9", "<NAME:3>", "<NAME:300>", "<A:1:N>", "<B:9999999999>", "9", "<EOH>"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40))
def test_any_text_is_taken_safely_or_left(pieces: list[str]):
    text = ("<CALL:4>W1AW<QSO_DATE:8>20240101<TIME_ON:4>1200<BAND:3>20m<DXCC:3>291<COUNTRY:2>US<CONT:2>NA"
            "<CQZ:1>5<EOR>" + "".join(pieces))
    count, pos, rows = fast(text)
    assert count >= 1 and pos <= len(text)
    assert rows == b"".join(slow(text)[:count])  # type: ignore[arg-type]


def test_it_stops_where_the_input_or_the_room_ends():
    one = record([("CALL", "W1AW"), ("QSO_DATE", "20240101"), ("TIME_ON", "1200"), ("BAND", "20m"), ("DXCC", "291"),
                  ("COUNTRY", "US"), ("CONT", "NA"), ("CQZ", "5")])
    assert fast(one * 3, max_records=2)[:2] == (2, 2 * len(one) - 1)
    assert fast(one + one[:-5])[:2] == (1, len(one) - 1)  # the second <EOR> is cut off
    assert fast(one[:10])[:2] == (0, 0)
    assert fast("<EOR>" + one)[:2] == (0, 0)  # an empty record: the Python path says so


def _batches(data: bytes, use_fast: bool, monkeypatch: pytest.MonkeyPatch, size: int) -> list[Batch]:
    with monkeypatch.context() as patch:
        if not use_fast:
            patch.setattr(BatchMaker, "_take_plain_records", lambda self: 0)
        maker = BatchMaker(OWNER, batch_records=97)
        batches: list[Batch] = []
        for start in range(0, len(data), size):
            maker.feed(data[start:start + size])
            batches.extend(maker.batches())
        maker.close()
        batches.extend(maker.batches())
    return batches


@pytest.mark.parametrize("name", sorted(p.name for p in (testdata.TESTDATA / "adif").glob("*.adi")))
def test_testdata_batches_are_the_same_with_and_without_the_fast_path(name: str, monkeypatch: pytest.MonkeyPatch):
    data = (testdata.TESTDATA / "adif" / name).read_bytes()
    for size in (len(data) or 1, 4093):
        assert _batches(data, True, monkeypatch, size) == _batches(data, False, monkeypatch, size)


def test_non_ascii_names_take_the_fast_path():
    """Real logs' names and QTHs in UTF-8 and in Latin-1; a value that is neither (a UTF-8 character
    cut by its declared length) is left to the Python path, and so is non-ASCII in a column field."""
    base = [("CALL", "OH2ABC"), ("QSO_DATE", "20240101"), ("TIME_ON", "1200"), ("BAND", "20m")]
    utf8 = "Petäjävesi 😀".encode().decode("latin-1")
    for value in (utf8, "Jörg Müller", "Ørsted"):
        text = record([*base, ("QTH", value)])
        assert fast(text)[:2] == (1, len(text) - 1)
        assert fast(text)[2] == slow(text)[0]
    head = record(base)[:-6]
    for text in (head + "<NAME:2>C\xc3\xb4t <EOR>",     # the declared length cuts ô in two
                 head + "<NAME:3>15\xb0 <EOR>",          # Latin-1 with a byte that may continue UTF-8
                 record([*base, ("GRIDSQUARE", "ü")])):  # column fields are stripped with Unicode rules
        assert fast(text)[0] == 0
        assert len(slow(text)) == 1  # the Python path decides (the grid one is refused: not a locator)


_SLIP_BANDS = [(name, lo, hi) for name, lo, hi in BANDS if hi < 300_000]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_SLIP_BANDS), st.floats(0, 1), st.sampled_from((3, 6)), st.integers(0, 6),
       st.sampled_from(("FREQ", "FREQ_RX")))
def test_a_freq_in_khz_or_hz_takes_the_fast_path_with_the_python_value(
        band: tuple[str, float, float], where: float, exponent: int, decimals: int, field: str):
    """Loggers that write FREQ in kHz or Hz (old Cloudlog exports: 14074000): normalize() reads it as
    such beside a BAND it then fits, and so does the fast path, to the same rounded MHz."""
    name, lo, hi = band
    mhz = lo + (hi - lo) * where
    text_value = f"{mhz * 10 ** exponent:.{decimals}f}"
    band_field = "BAND" if field == "FREQ" else "BAND_RX"
    base = [("CALL", "OH2ABC"), ("QSO_DATE", "20240101"), ("TIME_ON", "1200"), ("BAND", name)]
    text = record([*base, (band_field, name), (field, text_value)] if field == "FREQ_RX"
                  else [*base, (field, text_value)])
    [expected] = slow(text)
    count, _, rows = fast(text)
    if expected is None:  # outside the band after all (rounded past an edge): refused by both
        assert count == 0
    else:
        assert count == 1 and rows == expected
