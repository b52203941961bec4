"""The user commands loggers send at start-up, answered with DXSpider's wording. Each reply was checked
against a real DXSpider (shared/peers/dxspider, e61ab5ee) and is quoted from its sources."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hamsrv.firehose.bulletins import Board, Talk, format_bulletins
from hamsrv.firehose.cluster import Announce, Wcy, Wwv, parse_line
from hamsrv.firehose.commands import format_users
from hamsrv.firehose.events import Post, Publish, Send, ShowBulletins, ShowDx, ShowUsers
from hamsrv.firehose.ring import SpotRing
from hamsrv.firehose.session import ClusterSession, State
from hamsrv.model import Spot

NOW = datetime(2026, 12, 4, 5, 51, 30, tzinfo=UTC)


def user(call: str = "G4ABC") -> ClusterSession:
    session = ClusterSession("GB7HAM", clock=lambda: NOW)
    session.receive_data(call.encode() + b"\r\n")
    assert session.state is State.USER
    return session


def answer(session: ClusterSession, line: str) -> str:
    """What the user reads back, without the prompt."""
    events = session.receive_data(line.encode() + b"\r\n")
    text = b"".join(e.data for e in events if isinstance(e, Send)).decode()
    return text.rsplit("G4ABC de GB7HAM", 1)[0]


@pytest.mark.parametrize(("line", "expected"), [
    # cmd/set/name.pl, Messages `name => q{Your name is now '$_[0]'}`
    ("set/name Fred Bloggs", "Your name is now 'Fred Bloggs'\r\n"),
    ("set/name", "Please enter your name, set/name <your name>\r\n"),  # `namee1`
    # `qth => q{Your QTH is now '$_[0]'}`
    ("set/qth Nowhere Town", "Your QTH is now 'Nowhere Town'\r\n"),
    # `qra => q{Your QRA Locator is now '$_[0]'}`, `qrae2 => q{Cannot recognise '$_[0]' as a QRA locator (eg JO02LQ)}`
    ("set/qra IO91WM", "Your QRA Locator is now 'IO91WM'\r\n"),
    ("set/qra XX", "Cannot recognise 'XX' as a QRA locator (eg JO02LQ)\r\n"),
    # `loc => q{Your Lat/Long is now '$_[0]'}`, `loce3 => q{$_[0] is a QRA locator, please use: set/qra $_[0]}`
    ("set/location 51 30 N 0 10 W", "Your Lat/Long is now '51 30 N 0 10 W'\r\n"),
    ("set/location IO91", "IO91 is a QRA locator, please use: set/qra IO91\r\n"),
    ("set/location here", "Cannot recognise 'here' as a Lat/Long (eg 52 20 N 0 16 E)\r\n"),
    # cmd/unset/dx.pl (set/nodx is its alias): DXSpider answered `DX Spots disabled for G4ABC`
    ("set/nodx", "DX Spots disabled for G4ABC\r\n"),
    ("unset/dx", "DX Spots disabled for G4ABC\r\n"),
    ("set/dx", "DX Spots enabled for G4ABC\r\n"),
    ("set/dxgrid", "DX Grid enabled for G4ABC\r\n"),
    ("unset/dxgrid", "DX Grid disabled for G4ABC\r\n"),
    ("set/dxcq", "DX CQ Zones enabled for G4ABC\r\n"),
    ("unset/dxcq", "DX CQ Zones disabled for G4ABC\r\n"),
    # `beepon => q{Beeps are now on}`, `beepoff => q{Beeps are now off}`
    ("set/beep", "Beeps are now on\r\n"),
    ("unset/beep", "Beeps are now off\r\n"),
    # cmd/set/ve7cc.pl: `$self->ve7cc(1); push @out, $self->msg('ok');` -> `ok => q{Operation successful}`
    ("set/ve7cc", "Operation successful\r\n"),
    ("set/announce", "Announces enabled for G4ABC\r\n"),
    ("unset/announce", "Announces disabled for G4ABC\r\n"),
    ("set/wwv", "WWV enabled for G4ABC\r\n"),
    ("unset/wwv", "WWV disabled G4ABC\r\n"),  # sic: `wwvu => q{WWV disabled $_[0]}`
    ("set/wcy", "WCY enabled for G4ABC\r\n"),
    ("unset/wcy", "WCY disabled for G4ABC\r\n"),
    ("set/talk", "Talk enabled for G4ABC\r\n"),
    ("unset/talk", "Talk disabled for G4ABC\r\n"),
    # cmd/set/wantrbn.pl: `skims => q{RBN/Skimming set to $_[1] for $_[0]}`
    ("set/skimmer", "RBN/Skimming set to ALL MODES for G4ABC\r\n"),
    ("set/skimmer CW", "RBN/Skimming set to CW for G4ABC\r\n"),
    ("set/skimmer CW RTTY", "RBN/Skimming set to CW, RTTY for G4ABC\r\n"),
    ("set/skimmer FT", "RBN/Skimming set to FT8 & FT4 for G4ABC\r\n"),
    ("set/skimmer BEACON", "RBN/Skimming set to BEACONS for G4ABC\r\n"),
    ("set/skimmer SSB", "Sorry SSB is not a valid argument\r\n"),  # `e39`
    ("set/noskimmer", "RBN/Skimming set to NONE for G4ABC\r\n"),
    ("unset/skimmer", "RBN/Skimming set to NONE for G4ABC\r\n"),
    # cmd/announce.pl: `return (1, $self->msg('e9')) if !@f;` -> `e9 => q{Need at least some text}`
    ("announce", "Need at least some text\r\n"),
    # cmd/talk.pl: `e8 => q{Need a callsign and some text}`, `e22 => q{$_[0] is not a callsign}`
    ("talk", "Need a callsign and some text\r\n"),
    ("talk NOCALL hello", "NOCALL is not a callsign\r\n"),
    ("frobnicate", "Invalid command\r\n"),  # `e1 => q{Invalid command}`
])
def test_dxspider_replies(line, expected):
    assert answer(user(), line) == expected


def test_settings_take_effect():
    session = user()
    for line in ("set/name Fred Bloggs", "set/qth Nowhere", "set/qra io91wm", "set/nodx", "set/dxcq",
                 "set/beep", "set/ve7cc", "unset/announce", "unset/wwv", "unset/wcy", "unset/talk"):
        answer(session, line)
    assert (session.name, session.qth, session.qra) == ("Fred Bloggs", "Nowhere", "IO91WM")
    assert not session.want_dx and session.want_cq and session.beep and session.ve7cc
    assert not (session.want_ann or session.want_wwv or session.want_wcy or session.want_talk)
    entry = SpotRing().append(Spot("K1ABC", 14025.0, "JA1XYZ", "cq", NOW), 0.0)
    assert not session.wants(entry)  # set/nodx
    answer(session, "set/dx")
    assert session.wants(entry)


def test_qra_fills_the_tail_of_the_users_own_spots():
    session = user()
    answer(session, "set/qra IO91WM")
    [event] = [e for e in session.receive_data(b"dx 14025 JA1XYZ cq\r\n") if isinstance(e, Publish)]
    assert event.spot.spotter_grid == "IO91"
    assert session.spot_line(SpotRing().append(event.spot, 0.0)).endswith(b"0551Z IO91\r\n")


def test_dxcq_grid_beep_and_ve7cc_layouts():
    """DXCommandmode.pm format_dx_spot: `$slot1 = sprintf(" %2d", $_[9])` (dx CQ zone) ends the comment,
    slot2 follows the time; `$buf .= "\\a\\a" if $self->{beep};`; VE7CC.pm `CC11^...`."""
    spot = Spot("K1ABC", 14025.0, "JA1XYZ", "cq", NOW, cqz=25)
    spot.extra["spotter_cqz"] = "5"
    entry = SpotRing().append(spot, 0.0)
    session = user()
    answer(session, "set/dxcq")
    line = session.spot_line(entry).decode()
    assert line == "DX de K1ABC:     14025.0  JA1XYZ       cq                          25 0551Z  5\r\n"
    answer(session, "set/beep")
    assert session.spot_line(entry).endswith(b" 5\a\a\r\n")
    answer(session, "set/ve7cc")
    cc11 = session.spot_line(entry).decode().rstrip("\r\n")
    assert cc11.startswith("CC11^14025.0^JA1XYZ^ 4-Dec-2026^0551Z^cq^K1ABC^")
    back = parse_line(cc11)
    assert back is not None and back.spot.dx == "JA1XYZ" and back.spot.cqz == 25


def test_sh_dx_50_alias_and_fdx_and_options():
    """cmd/Aliases: `'^sho?w?/dx/(\\d+)', 'show/dx $1'` and `'^sho?w?/fdx', 'show/dx real'`."""
    session = user()
    [dx50] = [e for e in session.receive_data(b"sh/dx/50\r\n") if isinstance(e, ShowDx)]
    assert dx50.count == 50 and not dx50.real
    [fdx] = [e for e in session.receive_data(b"sh/fdx 3\r\n") if isinstance(e, ShowDx)]
    assert fdx.count == 3 and fdx.real
    [ev] = [e for e in session.receive_data(b"sh/dx 5 by K1 info cq on 20m\r\n") if isinstance(e, ShowDx)]
    assert ev.count == 5 and ev.query == "5 by K1 info cq on 20m"
    assert ev.matches(Spot("K1ABC", 14025.0, "JA1XYZ", "CQ test", NOW))
    assert not ev.matches(Spot("W1ABC", 14025.0, "JA1XYZ", "CQ test", NOW))
    assert not ev.matches(Spot("K1ABC", 14025.0, "JA1XYZ", "tnx", NOW))
    [exact] = [e for e in session.receive_data(b"sh/dx JA1X exact\r\n") if isinstance(e, ShowDx)]
    assert not exact.matches(Spot("K1ABC", 14025.0, "JA1XYZ", "", NOW))
    assert exact.matches(Spot("K1ABC", 14025.0, "JA1X", "", NOW))
    [day] = [e for e in session.receive_data(b"sh/dx day 1\r\n") if isinstance(e, ShowDx)]
    assert day.matches(Spot("K1ABC", 14025.0, "JA1X", "", NOW.replace(day=3)))
    assert not day.matches(Spot("K1ABC", 14025.0, "JA1X", "", NOW))


def test_announce_talk_and_show_events():
    session = user()
    [post] = [e for e in session.receive_data(b"announce full hello all\r\n") if isinstance(e, Post)]
    assert post.item == Announce("G4ABC", "ALL", "hello all")
    [local] = [e for e in session.receive_data(b"announce hi there\r\n") if isinstance(e, Post)]
    assert local.item == Announce("G4ABC", "LOCAL", "hi there")  # cmd/announce.pl: `my $via = 'LOCAL';`
    [talk] = [e for e in session.receive_data(b"talk G0XYZ are you there\r\n") if isinstance(e, Post)]
    assert talk.item == Talk("G4ABC", "G0XYZ", "are you there")
    shows = [e for line in (b"sh/ann", b"sh/wwv 2", b"sh/wcy", b"who", b"sh/users")
             for e in session.receive_data(line + b"\r\n") if isinstance(e, ShowBulletins | ShowUsers)]
    assert shows == [ShowBulletins("announce", 20), ShowBulletins("wwv", 2), ShowBulletins("wcy", 5),
                     ShowUsers("who"), ShowUsers("users")]


def test_bulletins_reach_users_who_want_them():
    board = Board(clock=lambda: NOW)
    session = user()
    ann = board.post(Announce("G0XYZ", "ALL", "hello"), source="peer:GB7DJK", origin="GB7DJK")
    sysop = board.post(Announce("G0XYZ", "SYSOP", "hello sysops"), source="peer:GB7DJK", origin="GB7DJK")
    talk = board.post(Talk("G0XYZ", "G4ABC", "hi"), source="user:G0XYZ", origin="GB7HAM")
    other = board.post(Talk("G0XYZ", "M0AAA", "hi"), source="user:G0XYZ", origin="GB7HAM")
    assert ann is not None and sysop is not None and talk is not None and other is not None
    assert session.wants_bulletin(ann) and not session.wants_bulletin(sysop)
    assert session.wants_bulletin(talk) and not session.wants_bulletin(other)
    assert talk.line == b"G4ABC de G0XYZ: hi\r\n"  # DXCommandmode.pm talk: `"$to de $from: $line"`
    assert board.post(Announce("G0XYZ", "ALL", "hello"), source="peer:X", origin="X") is None  # dup
    answer(session, "unset/announce")
    assert not session.wants_bulletin(ann)


def test_show_bulletin_layouts_match_dxspider():
    """What DXSpider printed for sh/wwv, sh/wcy and sh/ann (transcripts/dxspider_e61ab5ee_user.txt)."""
    board = Board(clock=lambda: datetime(2026, 12, 4, 5, 39, 56, tzinfo=UTC))
    at = datetime(2026, 12, 4, 5, 18, tzinfo=UTC)
    board.post(Wwv("G4ABC", 5, 120, 4, 1, "quiet"), source="peer:GB7TST-2", origin="GB7TST-2", when=at)
    board.post(Wcy("DK0WCY", 5, k=2, expk=1, a=5, r=99, sfi=150, sa="qui", gmf="qui", au="no"),
               source="peer:GB7TST-2", origin="GB7TST-2", when=at)
    board.post(Announce("G0XYZ", "ALL", "hello from peer"), source="peer:GB7TST-2", origin="GB7TST-2")
    from pathlib import Path
    saw = (Path(__file__).parent / "transcripts" / "dxspider_e61ab5ee_user.txt").read_text().splitlines()
    assert format_bulletins("wwv", board.newest("wwv", 5)).decode().splitlines() == saw[7:9]
    assert format_bulletins("wcy", board.newest("wcy", 5)).decode().splitlines() == saw[9:11]
    assert format_bulletins("announce", board.newest("announce", 20)).decode().splitlines() == saw[11:12]


def test_who_and_show_users_layouts():
    """cmd/who.pl `sprintf "%10s $type $sort $t %-10.10s $ping $ip"`; DXSpider printed
    `     G4ABC USER EXT   4-Dec-2026 0551Z Fred Blogg       127.0.0.1`."""
    rows = [("G4ABC", datetime(2026, 12, 4, 5, 51, tzinfo=UTC), "Fred Bloggs", "127.0.0.1")]
    assert format_users("who", "GB7HAM", rows).decode().splitlines() == [
        "  Callsign Type      Started           Name     Ave RTT Link",
        "     G4ABC USER EXT   4-Dec-2026 0551Z Fred Blogg       127.0.0.1"]
    # cmd/show/users.pl: `join(' ', $self->msg('userconn'), $main::mycall)`, then five calls a line
    many = [(f"G{n}ABC", rows[0][1], "", "") for n in range(6)]
    assert format_users("users", "GB7HAM", many).decode().splitlines() == [
        "Callsigns connected to GB7HAM", "G0ABC        G1ABC        G2ABC        G3ABC        G4ABC",
        "G5ABC"]


def test_self_spot_below_1240_mhz_stays_with_the_spotter():
    """cmd/dx.pl: `if (($spotted =~ /$spotternoid/ || $spotted =~ /$callnoid/) && $freq <
    $Spot::minselfspotqrg)` (`our $minselfspotqrg = 1240000;`) -> `$localonly++`: shown to the spotter
    only, not stored, not passed on."""
    session = user("G4ABC-2")
    events = session.receive_data(b"dx 14025 G4ABC/P cq\r\n")
    assert not [e for e in events if isinstance(e, Publish)]
    assert b"DX de G4ABC-2:   14025.0  G4ABC/P      cq" in b"".join(e.data for e in events if isinstance(e, Send))
    [spot] = [e for e in session.receive_data(b"dx 1296100 G4ABC cq\r\n") if isinstance(e, Publish)]
    assert spot.spot.dx == "G4ABC"  # 23 cm and up: self-spots are allowed


def test_board_is_bounded_and_followers_read_only_what_is_new():
    board = Board(max_keep=3, clock=lambda: NOW)
    posted = [board.post(Talk("G0XYZ", "G4ABC", f"line {n}"), source="user:G0XYZ", origin="GB7HAM")
              for n in range(20)]
    assert [p.seq for p in board.after(17)] == [18, 19, 20]
    assert len(board.after(0)) == 12  # 4 x max_keep held for followers, the rest forgotten
    assert len(board.newest("talk", 10)) == 3 and posted[-1] is board.newest("talk", 1)[0]
