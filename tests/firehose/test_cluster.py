"""DX-cluster line parsing and formatting, pinned to real lines from shared/testdata/dxcluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hamsrv.firehose.cluster import (
    Announce,
    DxSpot,
    Wcy,
    Wwv,
    format_dx_line,
    parse_line,
    parse_skimmer_comment,
)
from hamsrv.model import Spot
from tests import testdata

DXCLUSTER = testdata.TESTDATA / "dxcluster"
NOW = datetime(2020, 7, 5, 23, 5, 30, tzinfo=UTC)


def lines(name: str) -> list[str]:
    with open(DXCLUSTER / name, encoding="utf-8", newline="") as f:
        return f.readlines()


def spot_of(line: str | bytes, now: datetime = NOW) -> Spot:
    event = parse_line(line, now)
    assert isinstance(event, DxSpot), line
    return event.spot


def fields(spot: Spot) -> tuple[object, ...]:
    return spot.spotter, spot.freq, spot.dx, spot.comment, spot.time.strftime("%Y-%m-%d %H%M")


# --- dxclparser_labelled_lines.tsv: the label names the event type (and server software) ------------

def labelled_lines() -> list[tuple[str, str]]:
    rows = [line.rstrip("\n").partition("\t") for line in lines("dxclparser_labelled_lines.tsv")]
    return [(label, line) for label, _, line in rows if not label.startswith("#")]


LABELLED = labelled_lines()
EXPECTED_LABELLED: dict[str, object] = {
    "dx_valid_dxspider": ("DJ1TO", 3780.0, "OH5Z", "LSB", "2020-07-05 2200"),
    "dx_valid_arcluster": ("N2CQ", 14036.1, "W0BH", "OK QSO Party: Major", "2020-07-05 1624"),
    "dx_valid_cccluster": ("ZS6WN", 21075.4, "CX2DAJ", "FT8", "2020-07-05 1625"),
    "dx_missing_loc_dxspider": ("KE8GX", 14025.0, "3B9FR", "599 into N. MI", "2020-07-05 1812"),
    "dx_missing_comment_dxspider": ("OZ1FJB", 3527.6, "DL2ASG", "", "2020-07-05 1815"),
    "dx_missing_comment_arcluster": ("W9KXQ", 14076.0, "HB9AOF", "", "2020-07-05 1629"),
    "dx_missing_comment_cccluster": ("RK9UE", 7115.0, "RK6BP", "", "2020-07-05 1625"),
    "wwv_valid_dxspider": Wwv("VE7CC", 21, 70, 12, 3, "No Storms -> No Storms"),
    "wwv_valid_arcluster": Wwv("VE7CC", 15, 68, 9, 2, "No Storms -> Minor w/G1"),
    "wwv_valid_cccluster": Wwv("AE5E", 0, 69, 15, 4, "No Storms -> No Storms"),
    "wcy_valid_dxspider": Wcy("DK0WCY-1", 22, 9, 0, 139, 156, 223, "maj", "sev", "aurora"),
    "wcy_valid_cccluster": Wcy("DK0WCY-1", 17, 2, 3, 15, 0, 68, "qui", "min", "no"),
    "wx_valid_dxspider": Announce("VA3SAE", "WX", "va3sub"),
    "wx_valid_cccluster": Announce("LA3WAA", "WX", "The command WX will send a local weather announcement."
                                                   "  (WX Sunny and Warm)"),
    "toall_valid_dxspider": Announce("EA8CEN-9", "ALL", "carnaval de tenerife ea8urt"),
    "toall_valid_cccluster": Announce("CT2IDL", "ALL", "TNX qso.."),
    "tolocal_valid_lower_case": Announce("N5UXT", "LOCAL", "rebooting"),
    "tolocal_valid_upper_case": Announce("IW5CLM", "LOCAL", "off"),
}


@pytest.mark.parametrize(("label", "line"), LABELLED, ids=[label for label, _ in LABELLED])
def test_labelled_lines(label, line):
    event = parse_line(line, NOW)
    if label.endswith("_only_type"):  # header fragments without a body
        assert event is None
    elif label.startswith("rbn"):  # comment bodies only: not lines, but what the skimmer parser reads
        assert event is None
        assert parse_skimmer_comment(line) is not None
    elif label.startswith("dx_"):
        assert isinstance(event, DxSpot)
        assert fields(event.spot) == EXPECTED_LABELLED[label]
    else:
        assert event == EXPECTED_LABELLED[label]


def test_dxspider_line_with_spotter_locator():
    assert spot_of(dict(LABELLED)["dx_valid_dxspider"]).spotter_grid == "JO62"


@pytest.mark.parametrize(("body", "expected"), [
    ("FT8  -15 dB   6 BPS  CQ", ("FT8", -15, None, 6, None, "CQ")),
    ("CW     9 dB  21 WPM  NCDXF B", ("CW", 9, 21, None, None, "NCDXF B")),
    ("RTTY  10 dB  45 BPS  CQ", ("RTTY", 10, None, 45, None, "CQ")),
    ("FT8  -12 dB  FK68    CQ", ("FT8", -12, None, None, "FK68", "CQ")),
    ("599 tnx", None),
    ("GOOD 5 dB", None),  # not a mode
])
def test_skimmer_comment(body, expected):
    info = parse_skimmer_comment(body)
    got = None if info is None else (info.mode, info.snr, info.wpm, info.bps, info.grid, info.kind)
    assert got == expected


# --- RBN telnet lines --------------------------------------------------------------------------------

def test_every_rbn_line_is_a_skimmer_spot():
    spots = [spot_of(line) for line in lines("rbn_telnet_lines_20200705.txt")]
    assert len(spots) == 34
    assert all(s.skimmer and s.mode == "CW" and s.snr is not None and s.wpm for s in spots)
    first = spots[0]
    assert fields(first) == ("KM3T-2-#", 14100.0, "CS3B", "CW    24 dB  22 WPM  NCDXF B", "2020-07-05 2259")
    assert (first.snr, first.wpm, first.extra["rbn_type"]) == (24, 22, "NCDXF B")
    assert spots[2].freq == 7018.2 and spots[2].spotter == "LZ3CB-#"  # `7018.20`: two decimals
    assert spots[1].extra["rbn_type"] == "BEACON" and spots[1].dx == "AB8Z/B"


def test_debug_log_lines_match_the_telnet_copy():
    raw = [line[line.index("DX de"):] for line in lines("dxspider_debug_rbn_input_20200705.txt")
           if " <- I " in line]
    assert [fields(spot_of(r)) for r in raw] == \
        [fields(spot_of(r)) for r in lines("rbn_telnet_lines_20200705.txt")]


def test_dxspider_curated_rbn_output():
    spots = [spot_of(line) for line in lines("dxspider_rbn_curated_output.txt")]
    assert len(spots) == 8 and all(s.skimmer for s in spots)
    assert fields(spots[0]) == ("F8DGY-#", 7018.3, "RW1M", "CW  23dB Q:9* Z:20           16",
                                "2020-07-05 2259")
    assert (spots[0].mode, spots[0].snr, spots[0].wpm, spots[0].extra["spotter_zone"]) == ("CW", 23, None, "14")
    assert (spots[5].mode, spots[5].snr) == ("FT8", -14)


# --- flcluster: AR-Cluster/DXSpider lines with CR LF and bells; CC Cluster with US states ------------

def wire(line: str) -> bytes:
    """flcluster's comments spell the control characters out; put the real bytes back."""
    return line.rstrip("\n").replace("<cr><lf>", "\r\n").replace("<BELL>", "\a").encode()


def test_flcluster_lines():
    spots = [spot_of(wire(line)) for line in lines("dx_de_lines_flcluster.txt")]
    assert len(spots) == 14
    assert fields(spots[0]) == ("KB8O", 14240.0, "D66D", "up 10 59 Ohio", "2020-07-05 2059")
    assert spots[0].spotter_grid == "EN81"
    assert fields(spots[3]) == ("N3ZV", 10147.0, "AN400G", "RTTY", "2020-07-05 2220")  # bells
    assert spots[3].spotter_grid == "FM18"
    cc = spots[8]
    assert fields(cc) == ("W7MEM", 14074.0, "AJ8MH", "DN17NR<F2>EN66HM", "2020-07-05 0014")
    assert (cc.extra["dx_state"], cc.extra["spotter_state"]) == ("MI", "ID")
    assert spots[12].extra == {"dx_state": "PR"} and spots[12].comment == "CQ DX"
    # 23:55 seen at 23:05 is yesterday's spot
    assert fields(spots[13]) == ("W7FW", 7009.1, "LU1YT", "tnx Carlos", "2020-07-04 2355")


def test_w6bsd_crlf_bytes():
    raw = (DXCLUSTER / "w6bsd_raw_bytes_crlf.txt").read_bytes()
    assert raw.count(b"\r\n") == 2
    dx, wwv = (parse_line(line, NOW) for line in raw.splitlines(keepends=True))
    assert isinstance(dx, DxSpot)
    assert fields(dx.spot) == ("SP5NOF", 10136.0, "UI5A", "FT8 +13dB from KO85 1778Hz", "2020-07-05 2138")
    assert (dx.spot.mode, dx.spot.snr, dx.spot.skimmer) == ("FT8", 13, False)
    assert wwv == Wwv("W0MU", 18, 93, 4, 2, "No Storms -> No Storms")


# --- pyhamtools fixtures: good lines, node sentences and deliberately broken ones --------------------

def test_pyhamtools_fixture_lines():
    events = [parse_line(line, NOW) for line in lines("pyhamtools_fixture_lines.txt")]
    good = [e.spot for e in events if isinstance(e, DxSpot)]
    assert fields(good[0]) == ("CT3FW", 21004.8, "HC2AO", "599 TKS(CW)QSL READ,QRZ.COM", "2020-07-05 2132")
    assert events[1] is None  # `$QRM` is no callsign
    assert events[5] is None  # `IDIOT` has no digit: no callsign
    assert events[9] is None  # `DX de 9K2/K2SES  14205.0`: no colon after the spotter
    assert events[10] is None  # 9330368887.0 kHz is above every band
    assert events[12] is None  # no colon
    microwave = spot_of(lines("pyhamtools_fixture_lines.txt")[4])
    assert (microwave.freq, microwave.dx, microwave.comment) == (10368887.0, "DL7VTX/B",
                                                                 "55s in JO50VFjo62 never hrd B4")
    assert spot_of(lines("pyhamtools_fixture_lines.txt")[6]).spotter_grid == "JO70"
    assert len(good) == 10


def test_pc11_and_pc61():
    pc11, pc61 = (spot_of(line) for line in lines("pyhamtools_fixture_lines.txt")[2:4])
    assert fields(pc11) == ("R9CAC", 14010.0, "R155AP", "CQ CQ", "2014-04-30 2252")
    assert (pc11.origin, pc11.extra) == ("RN6BN", {"hops": "95"})
    assert fields(pc61) == ("ND4X", 14030.5, "ZF2NUE", "", "2014-04-30 2253")
    assert (pc61.origin, pc61.extra) == ("W4NJA", {"spotter_ip": "72.51.152.150", "hops": "96"})


def test_cc11_lines():
    first, second = (spot_of(line) for line in lines("cc11_ve7cc_format_lines.txt"))
    assert fields(first) == ("ON3LX", 7083.0, "OP17A", "Sp\ufffdcial call com 14-18", "2017-08-26 0859")
    assert (first.origin, first.cqz, first.spotter_grid) == ("F5LEN-7", 14, "JN29")
    assert fields(second) == ("IZ1VZG", 14260.0, "IQ2XZ/P", "AWARD PAOLO NESPOLI 1PT", "2017-08-26 0859")
    assert (second.origin, second.cqz, second.spotter_grid) == ("GB7UJS", 15, "JN34")


def test_cc_cluster_session_has_no_events():
    """Banner, login prompt, stats table and prompts of a real CC Cluster session are not spots."""
    assert [parse_line(line, NOW) for line in lines("ccluster_AE5E_session_20161119.txt")] == [None] * 51


def test_every_dx_de_line_in_testdata_is_a_spot():
    known_bad = {"$QRM", "IDIOT", "9K2/K2SES", "9330368887.0", "DH1TW    234.0", "DX de DF2MX"}
    count = 0
    for path in sorted(DXCLUSTER.iterdir()):
        for line in lines(path.name):
            if "DX de" not in line or any(bad in line for bad in known_bad):
                continue
            count += 1
            spot_of(wire(line[line.index("DX de"):]))
    assert count == 14 + 7 + 35 + 8 + 8 + 34 + 1  # flcluster, tsv, debug log, curated, pyhamtools, rbn, w6bsd


# --- time handling -----------------------------------------------------------------------------------

def test_time_takes_the_date_of_now_or_yesterday():
    line = "DX de G4XYZ:      7003.5  K1ABC        599 tnx                        0912Z IO91"
    assert spot_of(line, datetime(2024, 3, 1, 9, 15, tzinfo=UTC)).time == datetime(2024, 3, 1, 9, 12, tzinfo=UTC)
    # a few minutes ahead is clock skew, not yesterday
    assert spot_of(line, datetime(2024, 3, 1, 9, 10, tzinfo=UTC)).time.day == 1
    assert spot_of(line, datetime(2024, 3, 1, 0, 5, tzinfo=UTC)).time == datetime(2024, 2, 29, 9, 12, tzinfo=UTC)


def test_default_now_is_current_utc():
    # A spot of half an hour ago (whatever the clock says: a fixed HHMM falls into the 5-minute
    # "ahead of our clock" window once a day) is dated to that minute.
    hhmm = (datetime.now(UTC) - timedelta(minutes=30)).strftime("%H%M")
    event = parse_line(f"DX de G4XYZ:      7003.5  K1ABC        599 tnx                        {hhmm}Z")
    assert isinstance(event, DxSpot)
    assert timedelta(minutes=29) <= datetime.now(UTC) - event.spot.time < timedelta(minutes=31)


@pytest.mark.parametrize("line", [
    "DX de G4XYZ:      0.0  K1ABC        599                        0912Z",
    "DX de G4XYZ:      7003.5  K1ABC        599                        2460Z",
    "DX de :      7003.5  K1ABC        599                        0912Z",
    "DX de G4XYZ:      7003.5  K1ABC        599",
    "PC11^nan^K1ABC^30-Apr-2014^2252Z^x^G4XYZ^GB7DJK^H95^~",
    "PC11^14010.0^K1ABC^30-Foo-2014^2252Z^x^G4XYZ^GB7DJK^H95^~",
    "PC61^14010.0^K1ABC^31-Feb-2014^2252Z^x^G4XYZ^GB7DJK",
    "DX de G4XYZ: " + "1" * 3000,
    "DX de G4XYZ:      7003.5  K1ABCDEFGHIJKLMNOPQRSTUVWXYZ   599   0912Z",  # call too long: not cut short
])
def test_bad_lines_are_none(line):
    assert parse_line(line, NOW) is None


# --- formatting --------------------------------------------------------------------------------------

def make_spot(**kw: object) -> Spot:
    base: dict[str, object] = {"spotter": "G4XYZ", "freq": 7003.5, "dx": "K1ABC", "comment": "599 tnx",
                               "time": datetime(2022, 2, 7, 9, 12, tzinfo=UTC)}
    return Spot(**{**base, **kw})  # type: ignore[arg-type]


def test_format_matches_the_facts_examples():
    assert format_dx_line(make_spot(spotter_grid="IO91")) == \
        "DX de G4XYZ:      7003.5  K1ABC        599 tnx                        0912Z IO91"
    assert format_dx_line(make_spot(spotter="PJ2A-#", freq=14025.0, dx="IP0TRC", comment="CW 16 dB 31 WPM CQ",
                                    time=datetime(2022, 2, 7, 13, 7, tzinfo=UTC))) == \
        "DX de PJ2A-#:    14025.0  IP0TRC       CW 16 dB 31 WPM CQ             1307Z"
    assert format_dx_line(make_spot(spotter="DK1ABC", freq=10368100.0, dx="DL0XX", comment="QRV",
                                    time=datetime(2022, 2, 7, 12, 0, tzinfo=UTC))) == \
        "DX de DK1ABC: 10368100.0  DL0XX        QRV                            1200Z"


def test_format_columns_and_width():
    line = format_dx_line(make_spot(comment="x" * 50))
    assert len(line) == 75 and line[70:75] == "0912Z" and line[39:69] == "x" * 30
    wide = format_dx_line(make_spot(comment="x" * 50), width=100)
    assert len(wide) == 95 and wide[39:89] == "x" * 50
    long_dx = format_dx_line(make_spot(dx="VP2E/W1ABCDEF", comment="y" * 50))
    assert long_dx[70:75] == "0912Z" and spot_of(long_dx).dx == "VP2E/W1ABCDEF"


# --- properties --------------------------------------------------------------------------------------

@settings(max_examples=500)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200),
                 st.text(max_size=120).map(lambda t: "DX de " + t),
                 st.text(max_size=120).map(lambda t: "PC61^" + t),
                 st.lists(st.text(max_size=12), max_size=22).map(lambda f: "^".join(["CC11", *f])),
                 st.text(max_size=80).map(lambda t: "WCY de " + t)))
def test_parse_never_raises(line):
    parse_line(line, NOW)


CALLS = st.from_regex(r"[A-Z]{1,2}[0-9][A-Z]{1,4}(/P)?", fullmatch=True)
WORDS = st.lists(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.,:!?<>+-=()/",
                         min_size=1, max_size=10), max_size=8).map(" ".join)


@settings(max_examples=300)
@given(spotter=st.one_of(CALLS, CALLS.map(lambda c: c.split("/")[0] + "-#")), dx=CALLS,
       decikhz=st.integers(1, 10_000_000_000 // 100), comment=WORDS,
       minute=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31),
                           timezones=st.just(UTC)),
       grid=st.one_of(st.none(), st.from_regex(r"[A-R]{2}[0-9]{2}", fullmatch=True)),
       width=st.integers(80, 120))
def test_format_then_parse_round_trips(spotter, dx, decikhz, comment, minute, grid, width):
    when = minute.replace(second=0, microsecond=0)
    spot = Spot(spotter=spotter, freq=decikhz / 10, dx=dx, comment=comment, time=when, spotter_grid=grid)
    line = format_dx_line(spot, width)
    back = spot_of(line, now=when + timedelta(minutes=1))
    # FACTS 2.1 layout: frequency right-aligned at column 23 unless it needs the room, call in 12 columns
    front = max(len(f"DX de {spotter}:") + 1 + len(f"{spot.freq:.1f}"), 24) + 2 + max(12, len(dx))
    fits = comment[: max(0, width - 12 - front)]
    assert (back.spotter, back.dx, back.time, back.spotter_grid) == (spotter, dx, when, grid)
    assert back.freq == pytest.approx(spot.freq, abs=0.05)
    assert back.comment == fits.strip()
