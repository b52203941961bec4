"""ClusterSession and LineReader on plain bytes: login, commands, filters, feeds, framing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hamsrv.firehose.cluster import DxSpot, format_dx_line, parse_line
from hamsrv.firehose.events import Disconnect, LoggedIn, Publish, Send, ShowDx
from hamsrv.firehose.ring import RingEntry, SpotRing
from hamsrv.firehose.session import ClusterSession, LineReader, State, feed_spot_ok, format_list_line
from hamsrv.firehose.spotfilter import BAND_GROUPS, FILTER_MODES, FilterError, SpotRule
from hamsrv.model import BANDS, Spot
from tests import testdata

TESTDATA = testdata.TESTDATA / "dxcluster"
NOW = datetime(2022, 2, 7, 13, 7, 42, tzinfo=UTC)


def clock() -> datetime:
    return NOW


def sent(events: list) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Send))


def published(events: list) -> list[Spot]:
    return [e.spot for e in events if isinstance(e, Publish)]


def user(call: str = "G0ABC") -> ClusterSession:
    session = ClusterSession("GB7DJK", clock=clock)
    session.start()
    session.receive_data(call.encode() + b"\r\n")
    assert session.state is State.USER
    return session


def entry(freq: float, dx: str = "IP0TRC", comment: str = "", spotter: str = "PJ2A",
          mode: str | None = None) -> RingEntry:
    spot = Spot(spotter=spotter, freq=freq, dx=dx, comment=comment, time=NOW, mode=mode)
    return SpotRing().append(spot, 0.0)


# ---- login


def test_greeting_ends_with_login_prompt_without_newline():
    greeting = sent(ClusterSession("GB7DJK", clock=clock).start())
    assert greeting.endswith(b"\r\n\r\nlogin: ")
    assert b"GB7DJK" in greeting


def test_login_gives_dxspider_style_prompt():
    session = ClusterSession("gb7djk", clock=clock)
    events = session.receive_data(b"g0abc-2\r\n")
    assert events[0] == LoggedIn("G0ABC-2", feed=False)
    # `%C de %M %D %T dxspider >` with a two-character day (FACTS 2.3)
    assert sent(events).endswith(b"G0ABC-2 de GB7DJK  7-Feb-2022 1307Z hamsrv >\r\n")


def test_bad_login_reprompts_then_closes():
    session = ClusterSession(clock=clock, max_login_attempts=3)
    for garbage in (b"hello world\r\n", b"!!!\r\n"):
        events = session.receive_data(garbage)
        assert sent(events).endswith(b"please try again\r\nlogin: ")
        assert session.state is State.LOGIN
    events = session.receive_data(b"IDIOT\r\n")  # no digit: not a callsign
    assert isinstance(events[-1], Disconnect)
    assert session.state is State.CLOSED
    assert session.receive_data(b"G0ABC\r\n") == []


def test_empty_line_at_login_repeats_prompt():
    session = ClusterSession(clock=clock)
    assert sent(session.receive_data(b"\r\n")) == b"login: "


# ---- framing


@pytest.mark.parametrize("chunks", [
    [b"G0ABC\r\nsh/dx\r\n"], [b"G0ABC\nsh/dx\n"], [b"G0ABC\rsh/dx\r"],
    [b"G0ABC\r", b"\nsh/dx\r", b"\n"],  # CRLF split across reads must not give an empty line
    [b"G0", b"ABC", b"\r\ns", b"h/dx\r\n"],
])
def test_line_endings(chunks):
    session = ClusterSession(clock=clock)
    events = [e for chunk in chunks for e in session.receive_data(chunk)]
    assert sum(isinstance(e, LoggedIn) for e in events) == 1
    assert sum(isinstance(e, ShowDx) for e in events) == 1
    assert sent(events).count(b"hamsrv >") == 2  # one after login, one after sh/dx: no empty lines


def test_telnet_negotiation_is_dropped_even_when_split():
    session = ClusterSession(clock=clock)
    data = b"\xff\xfb\x01\xff\xfd\x03G0A\xff\xfa\x18\x00xterm\xff\xf0BC\xff\xf1\r\n"
    for i in range(len(data)):
        session.receive_data(data[i:i + 1])
    assert session.call == "G0ABC"


def test_backspace_is_applied():
    reader = LineReader()
    assert reader.feed(b"G0ABX\x08C\r\n") == ["G0ABC"]


def test_overlong_line_is_reported_once_and_session_continues():
    session = user()
    events = session.receive_data(b"x" * 600 + b"y" * 600 + b"\r\nsh/dx 2\r\n")
    assert b"line too long" in sent(events)
    assert [e.count for e in events if isinstance(e, ShowDx)] == [2]


def test_line_reader_partial_shows_prompt_tail():
    reader = LineReader()
    assert reader.feed(b"Welcome\r\nPlease enter your call: ") == ["Welcome"]
    assert reader.partial == "Please enter your call: "


@settings(max_examples=200)
@given(lines=st.lists(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40), max_size=8),
       terminators=st.lists(st.sampled_from([b"\r\n", b"\n", b"\r"]), min_size=8, max_size=8),
       cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6))
def test_line_reader_round_trips_any_split(lines, terminators, cuts):
    pairs = list(zip(lines, terminators, strict=False))
    # a bare CR followed by an empty LF-terminated line reads as one CRLF: inherently ambiguous
    assume(not any(t == b"\r" and nxt == "" and nt[:1] == b"\n"
                   for (_, t), (nxt, nt) in zip(pairs, pairs[1:], strict=False)))
    data = b"".join(line.encode() + term for line, term in zip(lines, terminators, strict=False))
    reader = LineReader()
    out: list[str | None] = []
    start = 0
    for cut in sorted(c for c in cuts if c < len(data)) + [len(data)]:
        out += reader.feed(data[start:cut])
        start = cut
    assert out == lines


@settings(max_examples=300)
@given(chunks=st.lists(st.binary(max_size=300), max_size=10), max_line=st.integers(1, 64))
def test_line_reader_bounded_and_never_raises(chunks, max_line):
    reader = LineReader(max_line)
    for chunk in chunks:
        for line in reader.feed(chunk):
            assert line is None or len(line.encode()) <= max_line * 3  # U+FFFD may replace 1 byte
        assert len(reader.partial.encode()) <= max_line * 3


# ---- the DX command


def test_dx_command_publishes_user_spot():
    events = user().receive_data(b"DX 14025.0 IP0TRC test\r\n")
    [spot] = published(events)
    assert (spot.spotter, spot.freq, spot.dx, spot.comment) == ("G0ABC", 14025.0, "IP0TRC", "test")
    assert spot.band == "20m" and spot.source == "user" and spot.origin == "GB7DJK"
    assert spot.time == NOW.replace(microsecond=0)
    assert isinstance(events[0], Publish) and events[0].by_user
    assert sent(events).endswith(b"hamsrv >\r\n")


@pytest.mark.parametrize("line,freq,dx", [
    (b"dx ip0trc 14025", 14025.0, "IP0TRC"),  # DX <call> <kHz>, as DXSpider accepts
    (b"Dx 14.025 ip0trc", 14025.0, "IP0TRC"),  # below 1800 and in a band: MHz
    (b"DX 7003.55 K1ABC 599 tnx", 7003.6, "K1ABC"),
    (b"dx 137 G3XYZ", 137.0, "G3XYZ"),  # 137 kHz (2190m); 137 MHz is in no band
])
def test_dx_command_variants(line, freq, dx):
    [spot] = published(user().receive_data(line + b"\r\n"))
    assert (spot.freq, spot.dx) == (freq, dx)


@pytest.mark.parametrize("line,message", [
    (b"DX 99999 IP0TRC", b"not in an amateur band"),
    (b"DX 14025 !!!", b"not a valid callsign"),
    (b"DX IP0TRC", b"need a frequency and a callsign"),
    (b"DX IP0TRC K1ABC", b"no frequency"),
    (b"DX 14025.0 IDIOT", b"not a valid callsign"),
    (b"DX " + b"9" * 400 + b" IP0TRC", b"no frequency"),  # float() gives inf: refused, never rounded
])
def test_dx_command_errors(line, message):
    session = user()
    events = session.receive_data(line + b"\r\n")
    assert published(events) == []
    assert message in sent(events)
    assert session.state is State.USER


@settings(max_examples=150)
@given(band=st.sampled_from([b for b in BANDS if b[2] < 1_000_000]), frac=st.floats(0, 1),
       dx=st.from_regex(r"[A-Z]{1,2}[0-9][A-Z]{1,3}", fullmatch=True),
       comment=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=25))
def test_user_spot_round_trips_through_the_ak1a_line(band, frac, dx, comment):
    _, lo, hi = band
    khz = round(lo * 1000 + (hi - lo) * 1000 * frac, 1)
    if not lo * 1000 <= khz <= hi * 1000:
        return
    [spot] = published(user().receive_data(f"DX {khz:.1f} {dx} {comment}\r\n".encode()))
    event = parse_line(format_dx_line(spot), NOW)
    assert isinstance(event, DxSpot)
    back = event.spot
    assert (back.spotter, back.freq, back.dx, back.comment) == ("G0ABC", khz, dx, comment)


# ---- other commands


def test_show_dx_counts_and_limits():
    session = user()
    counts = [e.count for line in (b"sh/dx", b"sh/dx 5", b"show/dx 500", b"SH/D 0")
              for e in session.receive_data(line + b"\r\n") if isinstance(e, ShowDx)]
    assert counts == [10, 5, 100, 1]


def test_show_dx_band_and_prefix():
    [event] = [e for e in user().receive_data(b"sh/dx 3 on 20m IP\r\n") if isinstance(e, ShowDx)]
    assert event.count == 3
    assert event.matches(entry(14025.0).spot)
    assert not event.matches(entry(7025.0).spot)
    assert not event.matches(entry(14025.0, dx="K1ABC").spot)


def test_show_dx_bad_argument():
    events = user().receive_data(b"sh/dx 5 on 21m\r\n")
    assert not any(isinstance(e, ShowDx) for e in events)
    assert b"unknown band '21m'" in sent(events)


def test_show_dx_list_format_matches_dxspider_formatl():
    """Spot.pm formatl: `my $s = sprintf "%9.1f %-11s %s %s", $_[1], $_[2], $d, $t; my $width = ($_[0] ?
    $_[0] : 80) - length($spotter) - length($s) - 4;` ... `return "$s $comment$spotter";` (77 columns)."""
    spot = Spot(spotter="PJ2A-#", freq=14025.0, dx="IP0TRC", comment="CW 16 dB 31 WPM CQ", time=NOW)
    line = format_list_line(spot)
    assert line == "  14025.0 IP0TRC       7-Feb-2022 1307Z CW 16 dB 31 WPM CQ" + " " * 11 + "<PJ2A-#>"
    assert len(line) == 77
    long = format_list_line(Spot("G4ABC", 1296100.5, "VP2E/W1ABCDE", "x" * 60, NOW))
    assert len(long) == 77 and long.endswith("x<G4ABC>")
    listing = user().format_show_dx([entry(14025.0).spot, entry(7003.5).spot])
    assert listing.count(b"\r\n") == 2 and listing.startswith(b"  14025.0 IP0TRC")
    # cmd/show/dx.pl: `push @out, $self->msg('e3', "sh/dx", "'$line'") unless @out;`
    assert user().format_show_dx([], "by G4ABC") == b"sh/dx: 'by G4ABC' not found\r\n"


@given(st.text(max_size=40))
def test_sh_dx_and_dx_lines_never_carry_control_bytes(comment: str) -> None:
    """Issue 10: sh/dx lines passed C0 and C1 (0x80-0x9F) bytes through to users' terminals."""
    spot = Spot("G4XYZ", 14025.0, "IP0TRC", comment, datetime(2026, 12, 3, 12, 0, tzinfo=UTC))
    for line in (format_list_line(spot), format_dx_line(spot)):
        assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in line), repr(line)


def test_unknown_commands_count_toward_a_disconnect():
    """DXCommandmode.pm: `if (++$self->{errors} > $DXChannel::maxerrors) { $self->send($self->msg('e26'));
    $self->disconnect;` with `$maxerrors = 20`; `e1 => q{Invalid command}`, `e26 => q{Too many concurrent
    errors, you are being disconnected}`; a good command starts the count again (`delete $self->{errors}`)."""
    session = user()
    events = session.receive_data(b"frobnicate now\r\n" * 19 + b"sh/dx\r\n" + b"frobnicate\r\n" * 20)
    assert sent(events).count(b"Invalid command\r\n") == 39
    assert session.state is State.USER and not any(isinstance(e, Disconnect) for e in events)
    events = session.receive_data(b"sh/frob\r\n")
    assert b"Too many concurrent errors, you are being disconnected\r\n" in sent(events)
    assert isinstance(events[-1], Disconnect) and session.state is State.CLOSED


def test_bye_closes():
    session = user()
    events = session.receive_data(b"bye\r\nsh/dx\r\n")
    assert isinstance(events[-1], Disconnect)
    assert b"73 G0ABC" in sent(events)
    assert not any(isinstance(e, ShowDx) for e in events)


def test_set_page_width_echo():
    session = user()
    text = sent(session.receive_data(b"set/page 0\r\nset/width 100\r\nset/width 20\r\n"))
    assert b"page length 0" in text and b"width set to 100" in text and b"SET/WIDTH <80-250>" in text
    wide = entry(14025.0, comment="x" * 80)
    assert len(session.spot_line(wide)) == len(user().spot_line(wide)) + 20  # comment gets the room
    assert wide.line is not None and len(wide.line) < len(session.spot_line(wide))
    assert b"sh/dx 2\r\n" in sent(session.receive_data(b"set/echo\r\nsh/dx 2\r\n"))
    assert b"sh/dx 2\r\n" not in sent(session.receive_data(b"unset/echo\r\nsh/dx 2\r\n"))


def test_help_lists_commands():
    assert b"ACCEPT/SPOTS" in sent(user().receive_data(b"help\r\n"))


# ---- filters


def test_accept_filter_drops_other_bands():
    session = user()
    assert session.wants(entry(14025.0))
    session.receive_data(b"accept/spots on 40m\r\n")
    assert not session.wants(entry(14025.0))
    assert session.wants(entry(7025.0))


def test_hf_cw_filter_uses_spot_mode_or_rbn_comment():
    session = user()
    session.receive_data(b"acc/spot on hf/cw\r\n")
    assert session.wants(entry(14025.0, comment="CW 16 dB 31 WPM CQ"))
    assert session.wants(entry(14025.0, mode="CW"))
    assert not session.wants(entry(14074.0, mode="FT8"))
    assert not session.wants(entry(50090.0, mode="CW"))


def test_reject_and_numbered_slots_and_clear():
    session = user()
    session.receive_data(b"reject/spots on 6m\r\n")
    assert not session.wants(entry(50313.0)) and session.wants(entry(14025.0))
    session.receive_data(b"accept/spots 2 on 20m,40m/data\r\n")
    assert session.wants(entry(14025.0)) and not session.wants(entry(3525.0))
    assert session.wants(entry(7074.0, mode="FT8")) and not session.wants(entry(7025.0, mode="CW"))
    shown = sent(session.receive_data(b"sh/filter\r\n"))
    assert b"accept/spots 2 on 20m,40m/data" in shown and b"reject/spots 1 on 6m" in shown
    session.receive_data(b"clear/spots 1\r\n")
    assert not session.wants(entry(50313.0))  # the accept line still limits to 20m + 40m/data
    session.receive_data(b"clear/spots all\r\n")
    assert session.wants(entry(50313.0)) and session.wants(entry(3525.0))


def test_frequency_range_filter():
    session = user()
    session.receive_data(b"accept/spots on 14000/14070\r\n")
    assert session.wants(entry(14025.0)) and not session.wants(entry(14074.0))


def test_cc_cluster_set_filter():
    session = user()
    session.receive_data(b"SET/FILTER DXBM/PASS 20,15,70\r\n")
    assert session.wants(entry(21025.0)) and session.wants(entry(432100.0))
    assert not session.wants(entry(7025.0))
    session.receive_data(b"set/nofilter\r\n")
    assert session.wants(entry(7025.0))


@pytest.mark.parametrize("line,message", [
    (b"accept/spots on 21m", b"unknown band '21m'"),
    (b"accept/spots on hf/xyz", b"unknown mode 'xyz'"),
    (b"accept/spots by", b"ends too early"),
    (b"accept/spots on hf/cw and not by_itu 99", b"numbers from 1 to 90"),
    (b"accept/spots on hf/cw and frob 14", b"unknown filter word 'frob'"),
    (b"accept/spots (on hf/cw or call G", b"ends too early"),
    (b"accept/spots by_zone 77", b"numbers from 1 to 40"),
    (b"accept/spots 12 on 20m", b"0 to 9"),
    (b"accept/spots on 14350/14000", b"runs backwards"),
    (b"set/filter doc/pass 1", b"DXBM/PASS"),
])
def test_filter_errors(line, message):
    session = user()
    events = session.receive_data(line + b"\r\n")
    assert message in sent(events)
    assert session.wants(entry(50313.0))  # nothing was installed


def test_skimmer_spots_off_by_default():
    """DXSpider sends RBN spots only after set/skimmer (DXUser.pm wantrbn defaults to 0)."""
    session = user()
    assert not session.wants(entry(14025.0, spotter="PJ2A-#"))
    assert session.wants(entry(14025.0, spotter="PJ2A"))
    session.receive_data(b"set/skimmer\r\n")
    assert session.wants(entry(14025.0, spotter="PJ2A-#"))
    session.receive_data(b"unset/skimmer\r\n")
    assert not session.wants(entry(14025.0, spotter="PJ2A-#"))


def test_no_spots_before_login():
    session = ClusterSession(clock=clock)
    assert not session.wants(entry(14025.0))


_SPEC = st.one_of(
    st.sampled_from(sorted(BAND_GROUPS) + [b[0] for b in BANDS]),
    st.builds(lambda b, m: f"{b}/{m}", st.sampled_from(sorted(BAND_GROUPS) + ["20m", "2m"]),
              st.sampled_from(sorted(FILTER_MODES))),
    st.builds(lambda lo, span: f"{lo}/{lo + span}", st.integers(0, 10**7), st.integers(0, 10**5)),
)


@settings(max_examples=200)
@given(specs=st.lists(_SPEC, min_size=1, max_size=5))
def test_spot_rule_round_trips(specs):
    rule = SpotRule.parse("on " + ",".join(specs))
    assert str(SpotRule.parse(str(rule))) == str(rule)


@settings(max_examples=200)
@given(text=st.text(max_size=60))
def test_spot_rule_parse_raises_only_filter_error(text):
    try:
        SpotRule.parse(text)
    except FilterError as exc:
        assert str(exc)


# ---- feeds


def test_trusted_feed_pushes_raw_lines_without_login():
    session = ClusterSession("HAMSRV", trusted_feed=True, clock=clock)
    session.start()
    events = session.receive_data(
        b"DX de KM3T-2-#:  14100.0  CS3B           CW    24 dB  22 WPM  NCDXF B 2259Z\r\n"
        b"PC61^14030.5^ZF2NUE^ 7-Feb-2022^1253Z^ ^ND4X^W4NJA^72.51.152.150^H96^~\r\n"
        b"PC61^14030.5^ZF2NUE^30-Apr-2014^2253Z^ ^ND4X^W4NJA^72.51.152.150^H96^~\r\n"
        b"WWV de W0MU <18Z> :   SFI=93, A=4, K=2, No Storms -> No Storms\r\n")
    assert events[0] == LoggedIn("", feed=True)
    first, second = published(events)
    assert (first.spotter, first.dx, first.source) == ("KM3T-2-#", "CS3B", "feed")
    assert (second.spotter, second.origin) == ("ND4X", "W4NJA")
    assert sent(events) == b""  # feeds get no prompt echo
    assert session.feed_lines_ignored == 2  # the WWV, and the PC61 older than an hour (handle_11)
    assert not session.wants(entry(14025.0))


def test_trusted_peer_logged_in_as_user_that_pushes_becomes_a_feed():
    session = ClusterSession(trusted_feed=True, clock=clock)
    session.receive_data(b"G0ABC\r\n")
    assert session.state is State.USER
    events = session.receive_data(b"DX de K1ABC:     14025.0  IP0TRC  cq  1307Z\r\n")
    login, event = events  # a feed from now on: published as a feed spot, no prompt
    assert login == LoggedIn("G0ABC", feed=True) and session.state is State.FEED
    assert isinstance(event, Publish) and not event.by_user
    assert event.spot.spotter == "K1ABC" and event.spot.source == "feed:G0ABC"
    assert session.receive_data(b"sh/dx\r\n") == []  # commands are feed lines now: no answer, no prompt
    assert not session.wants(RingEntry(1, event.spot, b"{}", 0.0))


def test_feed_by_token_and_wrong_token():
    session = ClusterSession(feed_tokens=["s3cret"], clock=clock)
    events = session.receive_data(b"W1AW s3cret\r\n")
    assert LoggedIn("W1AW", feed=True) in events and session.state is State.FEED
    [spot] = published(session.receive_data(b"DX de K1ABC:     14025.0  IP0TRC  cq  1307Z\r\n"))
    assert spot.spotter == "K1ABC" and spot.source == "feed:W1AW"
    [own] = published(session.receive_data(b"DX de W1AW:     14025.0  IP0TRC  cq  1307Z\r\n"))
    assert own.spotter == "W1AW" and own.source == "feed"  # the feed's own spot: its call is the spotter

    session = ClusterSession(feed_tokens=["s3cret"], clock=clock)
    events = session.receive_data(b"W1AW guess\r\n")
    assert session.state is State.LOGIN
    assert b"invalid login" in sent(events) and b"guess" not in sent(events)


def test_untrusted_peer_cannot_push_spots():
    session = ClusterSession(clock=clock)
    events = session.receive_data(b"DX de K1ABC:     14025.0  IP0TRC  cq  1307Z\r\n")
    assert published(events) == [] and session.state is State.LOGIN


@pytest.mark.parametrize("name", ["rbn_telnet_lines_20200705.txt", "pyhamtools_fixture_lines.txt",
                                  "dx_de_lines_flcluster.txt", "w6bsd_raw_bytes_crlf.txt"])
def test_feed_publishes_every_spot_of_real_files(name):
    data = (TESTDATA / name).read_bytes()
    expected = [e.spot for ln in data.splitlines() for e in [parse_line(ln, NOW)]
                if isinstance(e, DxSpot) and feed_spot_ok(e.spot, ln.decode("latin-1").strip(), NOW)]
    session = ClusterSession(trusted_feed=True, clock=clock)
    spots = published(session.receive_data(data))
    assert [(s.spotter, s.dx, s.freq) for s in spots] == [(s.spotter, s.dx, s.freq) for s in expected]
    assert spots


# ---- never raises


@settings(max_examples=300)
@given(chunks=st.lists(st.binary(max_size=200), max_size=8), trusted=st.booleans(),
       login=st.sampled_from([b"", b"G0ABC\r\n", b"W1AW tok\r\n"]))
def test_session_never_raises_on_arbitrary_bytes(chunks, trusted, login):
    session = ClusterSession(trusted_feed=trusted, feed_tokens=["tok"], clock=clock)
    session.start()
    for chunk in [login, *chunks]:
        for event in session.receive_data(chunk):
            assert isinstance(event, Send | Publish | ShowDx | LoggedIn | Disconnect)  # no other events


@settings(max_examples=300)
@given(lines=st.lists(st.text(max_size=80), max_size=8))
def test_user_commands_never_raise(lines):
    session = user()
    for line in lines:
        session.receive_data(line.encode("utf-8", "surrogatepass") + b"\r\n")
    assert session.state in (State.USER, State.CLOSED)
