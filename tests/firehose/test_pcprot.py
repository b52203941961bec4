"""The PC protocol codec on bytes: a transcript recorded from a real DXSpider, and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hamsrv.firehose import pcprot
from hamsrv.firehose.cluster import (
    Announce,
    Wcy,
    Wwv,
    format_announce,
    format_dx_line,
    format_wcy,
    format_wwv,
)
from hamsrv.firehose.pcprot import (
    AnnounceMessage,
    Init,
    InitDone,
    Ping,
    RouteRecord,
    SpotMessage,
    WcyMessage,
    WwvMessage,
    decode,
    decrement_hops,
    parse_frame,
)
from hamsrv.model import Spot

TRANSCRIPTS = Path(__file__).parent / "transcripts"


def transcript(name: str) -> list[tuple[str, str]]:
    rows = (TRANSCRIPTS / name).read_text(encoding="utf-8").splitlines()
    return [(row[0], row[2:]) for row in rows if row[:1] in "<>" and row[:2] in ("< ", "> ")]


NODE = transcript("dxspider_e61ab5ee_node.txt")
USER_SAW = [r for r in (TRANSCRIPTS / "dxspider_e61ab5ee_user.txt").read_text().splitlines()
            if not r.startswith("#")]


def message(line: str) -> object:
    frame = parse_frame(line)
    assert frame is not None, line
    return decode(frame)


def test_transcript_pc18_offers_pc9x():
    """DXProtout.pm pc18: `"PC18^DXSpider Version: $main::version Build: ...$flags^$DXProt::myprot_version^"`."""
    pc18 = next(line for way, line in NODE if line.startswith("PC18"))
    init = message(pc18)
    assert init == Init("DXSpider Version:  Build:  Git: none/none pc9x", 5300, True) and init.spider


def test_transcript_init_replies_and_pc92():
    """DXSpider answers our PC92 A/K + PC20 with its own A and K records and PC22 (handle_20:
    `$self->send_local_config; $self->send(pc22());`)."""
    received = [message(line) for way, line in NODE if way == "<" and line.startswith("PC")]
    kinds = [type(m).__name__ for m in received]
    assert kinds[:4] == ["Init", "RouteRecord", "RouteRecord", "InitDone"]
    a, k = received[1], received[2]
    assert a == RouteRecord("GB7TST-2", 20388.0, "A", ("", "5GB7HAM:127.0.0.1"), 99)
    assert (k.sort, k.time_id, k.slots) == ("K", 20388.01, ("5GB7TST-2:5300:", "1", "1"))
    assert received[3] == InitDone(22)


def test_transcript_spot_ping_and_wwv_from_dxspider():
    """A user's `dx` on DXSpider reaches the peer as DXProtout.pm pc61
    (`PC61^%.1f^$dxcall^%s^%s^$text^$mycall^$main::mycall^$ipaddr^$hops^~`)."""
    got = {line[:4]: message(line) for way, line in NODE if way == "<" and line.startswith("PC")}
    spot = got["PC61"]
    assert isinstance(spot, SpotMessage) and spot.hops == 30
    s = spot.spot
    assert (s.spotter, s.freq, s.dx, s.comment, s.origin, s.extra["spotter_ip"]) == \
        ("G4ABC", 14070.0, "W1AW", "test spot", "GB7TST-2", "127.0.0.1")
    assert s.time == datetime(2026, 12, 4, 5, 39, tzinfo=UTC)
    assert got["PC51"] == Ping("GB7HAM", "GB7TST-2", ask=True)
    wwv = got["PC23"]
    assert isinstance(wwv, WwvMessage) and wwv.origin == "GB7TST-2" and wwv.hops == 99
    assert wwv.wwv == Wwv("G4ABC", 5, 120, 4, 1, "quiet")


def test_what_we_sent_decodes_to_what_dxspider_users_saw():
    """The sentences we sent in the transcript, decoded and shown in DXSpider's user layouts, give
    exactly the lines DXSpider's own user saw (DXCommandmode.pm announce/wwv/wcy, Spot formatting)."""
    sent = {line[:4]: message(line) for way, line in NODE if way == ">" and line[:4] in
            ("PC61", "PC93", "PC23", "PC73")}
    spot, ann, wwv, wcy = sent["PC61"], sent["PC93"], sent["PC23"], sent["PC73"]
    assert isinstance(spot, SpotMessage) and isinstance(ann, AnnounceMessage)
    assert isinstance(wwv, WwvMessage) and isinstance(wcy, WcyMessage)
    shown = [format_dx_line(spot.spot).rstrip(), format_announce(ann.announce), format_wwv(wwv.wwv),
             format_wcy(wcy.wcy)]
    assert shown == USER_SAW[:4]
    assert ann.announce == Announce("G0XYZ", "ALL", "hello from peer") and ann.talk_to is None


def test_formatters_reproduce_the_sentences_we_sent():
    """pc61/pc23/pc73/pc93 give back byte for byte the sentences DXSpider accepted in the transcript."""
    sent = {line[:4]: line for way, line in NODE if way == ">" and line.startswith("PC")}
    spot = Spot("G0XYZ", 14025.0, "K1ABC", "from peer", datetime(2026, 12, 4, 5, 39, tzinfo=UTC))
    assert pcprot.pc61(spot, "GB7HAM", "192.0.2.7") == sent["PC61"]
    when = datetime(2026, 12, 4, 5, 18, tzinfo=UTC)
    assert pcprot.pc23(Wwv("G0XYZ", 5, 150, 5, 2, "No Storms"), when, "GB7HAM") == sent["PC23"]
    wcy = Wcy("DK0WCY", 5, k=2, expk=1, a=5, r=99, sfi=150, sa="qui", gmf="qui", au="no")
    assert pcprot.pc73(wcy, when, "GB7HAM") == sent["PC73"]
    at = datetime(2026, 12, 4, 5, 39, 49, tzinfo=UTC)  # 20389 seconds after midnight
    assert pcprot.pc93("GB7HAM", at, "*", "G0XYZ", "hello from peer") == sent["PC93"]
    assert pcprot.pc20() == sent["PC20"]
    assert pcprot.pc92a("GB7HAM", datetime(2026, 12, 4, 5, 39, 47, tzinfo=UTC), "GB7TST-2") == \
        next(line for way, line in NODE if line.startswith("PC92^GB7HAM^20387"))


def test_pc11_and_text_escaping():
    """DXProtout.pm pc11: `$text = ' ' if !$text; $text =~ s/\\^/~/g;`."""
    spot = Spot("G4XYZ", 7003.5, "K1ABC", "", datetime(2022, 2, 7, 9, 12, tzinfo=UTC))
    assert pcprot.pc11(spot, "GB7DJK") == "PC11^7003.5^K1ABC^ 7-Feb-2022^0912Z^ ^G4XYZ^GB7DJK^H25^~"
    spot.comment = "a^b"
    line = pcprot.pc61(spot, "GB7DJK", "2001:db8::1", hops=25)
    assert line == "PC61^7003.5^K1ABC^ 7-Feb-2022^0912Z^a~b^G4XYZ^GB7DJK^2001,db8,,1^H25^~"
    back = message(line)
    assert isinstance(back, SpotMessage) and back.spot.comment == "a~b" and back.hops == 25


def test_pc12_targets():
    """DXProt.pm send_announce: `if ($_[3] eq '*') { $target = "SYSOP" }` ... `if ($_[5] eq '1')
    { $target = "WX"; $to = ''; }` ... `$target = "ALL" if !$target;`."""
    assert message("PC12^G0XYZ^*^hello^ ^GB7DJK^0^H30^~").announce == Announce("G0XYZ", "ALL", "hello")
    assert message("PC12^G0XYZ^*^hello^*^GB7DJK^0^H30^~").announce.to == "SYSOP"
    wx = message("PC12^G0XYZ^*^rain^ ^GB7DJK^1^H30^~").announce
    assert wx.to == "WX" and format_announce(wx) == "WX de G0XYZ: rain"
    assert message(pcprot.pc12("G0XYZ", "x^y", "GB7HAM")).announce == Announce("G0XYZ", "ALL", "x~y")


def test_pc93_talk_and_local():
    """DXProtHandle.pm handle_93: a routable `to` is a talk; `*` with via LOCAL an announcement to LOCAL."""
    talk = message("PC93^GB7DJK^100^G4ABC^G0XYZ^*^are you there^H99^")
    assert talk.talk_to == "G4ABC" and talk.announce.sender == "G0XYZ"
    local = message("PC93^GB7DJK^100^*^G0XYZ^LOCAL^hi^H99^")
    assert local.announce.to == "LOCAL"
    assert message("PC93^GB7DJK^100^*^G0XYZ^*^hi^GB7XYZ^H99^").origin == "GB7XYZ"
    assert message("PC93^GB7DJK^99999^*^G0XYZ^*^hi^H99^") is None  # time id past midnight


@pytest.mark.parametrize(("line", "expected"), [
    ("PC61^14070.0^W1AW^ 4-Dec-2026^0539Z^t^G4ABC^GB7TST-2^127.0.0.1^H30^~",
     "PC61^14070.0^W1AW^ 4-Dec-2026^0539Z^t^G4ABC^GB7TST-2^127.0.0.1^H29^~"),
    ("PC92^GB7TST-2^20388^A^^5GB7HAM^H99^", "PC92^GB7TST-2^20388^A^^5GB7HAM^H98^"),
    ("PC11^14010.0^R155AP^30-Apr-2014^2252Z^CQ^R9CAC^RN6BN^H0^~", None),
    ("PC20^", "PC20^"),
])
def test_decrement_hops(line, expected):
    """DXProt.pm normal: `$hops--; return if $hops < 0; $line =~ s/\\^H(\\d+)(\\^?\\~?)?$/sprintf('^H%d%s', $hops, $trail)/e;`."""
    assert decrement_hops(line) == expected


def test_not_pc_sentences():
    for line in ("", "PC", "PC5^x", "DX de G4ABC: 14025.0 K1ABC hi 1200Z", "PC1X^a", "xPC11^a"):
        assert parse_frame(line) is None
    assert message("PC99^who^knows^") is None
    assert message("PC51^GB7HAM^GB7TST-2^7^") is None


# --- properties --------------------------------------------------------------------------------------

calls = st.from_regex(r"[A-Z]{1,2}[0-9][A-Z]{1,3}(-[0-9]{1,2})?", fullmatch=True)
texts = st.text(st.characters(max_codepoint=0x2FF, exclude_categories=("Cc", "Cs")), max_size=40)
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)).map(
    lambda t: t.replace(second=0, microsecond=0, tzinfo=UTC))


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300),
                 st.lists(st.text(max_size=15), max_size=16).map(
                     lambda f: "^".join(f)).flatmap(
                     lambda rest: st.sampled_from(["PC11", "PC12", "PC18", "PC23", "PC51", "PC61", "PC73",
                                                   "PC92", "PC93"]).map(lambda h: h + "^" + rest))))
def test_parse_and_decode_never_raise(line):
    frame = parse_frame(line)
    if frame is not None:
        decode(frame)
        decrement_hops(frame.line)


@settings(max_examples=200)
@given(calls, calls, st.floats(min_value=1800, max_value=1_000_000).map(lambda f: round(f, 1)), texts, times,
       st.integers(0, 99), st.sampled_from(["192.0.2.1", "2001:db8::7"]))
def test_spot_sentences_round_trip(spotter, dx, freq, comment, when, hops, ip):
    spot = Spot(spotter, freq, dx, comment, when)
    for line in (pcprot.pc61(spot, "GB7HAM", ip, hops), pcprot.pc11(spot, "GB7HAM", hops)):
        back = message(line.encode("utf-8"))
        assert isinstance(back, SpotMessage) and back.hops == hops
        b = back.spot
        assert (b.spotter, b.freq, b.dx, b.time, b.origin) == (spotter, freq, dx, when, "GB7HAM")
        assert b.comment == comment.replace("^", "~").strip()
        passed = decrement_hops(line)
        assert (passed is None) == (hops == 0)
        if passed is not None:
            assert message(passed).hops == hops - 1


@settings(max_examples=200)
@given(calls, texts, st.integers(0, 86399), st.sampled_from(["*", "SYSOP", "WX"]))
def test_announce_sentences_round_trip(sender, text, seconds, to):
    now = datetime(2026, 1, 1, tzinfo=UTC).replace(hour=seconds // 3600, minute=seconds // 60 % 60,
                                                   second=seconds % 60)
    back = message(pcprot.pc93("GB7HAM", now, to, sender, text))
    assert isinstance(back, AnnounceMessage) and back.time_id == seconds and back.node == "GB7HAM"
    assert back.announce.sender == sender and back.announce.to == {"*": "ALL"}.get(to, to)
    assert back.announce.text == text.replace("^", "~").strip()
    assert pcprot.time_id_ok(seconds, now)


@settings(max_examples=200)
@given(calls, st.integers(0, 23), st.integers(0, 400), st.integers(0, 9), texts.filter(lambda t: t.strip()))
def test_wwv_round_trip(logger, hour, sfi, k, forecast):
    when = datetime(2026, 3, 9, hour, 18, tzinfo=UTC)
    back = message(pcprot.pc23(Wwv(logger, hour, sfi, 7, k, forecast), when, "GB7HAM"))
    assert isinstance(back, WwvMessage) and back.when == when
    assert back.wwv == Wwv(logger, hour, sfi, 7, k, forecast.replace("^", "~").strip())


def test_ping_round_trip():
    assert message(pcprot.pc51("GB7TST-2", "GB7HAM", True)) == Ping("GB7TST-2", "GB7HAM", True)
    assert message(pcprot.pc51("GB7HAM", "GB7TST-2", False)) == Ping("GB7HAM", "GB7TST-2", False)
    assert message(pcprot.pc20()) == InitDone(20)


def test_spot_time_window():
    """DXProtHandle.pm handle_11: `$d < $main::systime - $pc11_max_age || $d > $main::systime + 900`."""
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)

    assert pcprot.spot_time_ok(now - timedelta(minutes=60), now)
    assert not pcprot.spot_time_ok(now - timedelta(minutes=61), now)
    assert pcprot.spot_time_ok(now + timedelta(minutes=15), now)
    assert not pcprot.spot_time_ok(now + timedelta(minutes=16), now)
