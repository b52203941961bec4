"""Skimmer spots: held until two skimmers agree (RBN.pm `$minqual = 2`), shown with Q:n, sent only to
users who `set/skimmer` (and only the kinds they asked for), kept out of sh/dx."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from hamsrv.firehose.cluster import DxSpot, parse_line
from hamsrv.firehose.hub import Hub
from hamsrv.firehose.node import serve_cluster
from hamsrv.firehose.ring import SpotRing
from hamsrv.firehose.session import ClusterSession
from hamsrv.firehose.skimmer import LIMBO, Qualifier
from hamsrv.model import Spot
from tests import testdata

NOW = datetime(2020, 7, 5, 22, 59, tzinfo=UTC)
RBN = (testdata.TESTDATA / "dxcluster" / "rbn_telnet_lines_20200705.txt").read_text().splitlines()


def rbn(line: str) -> Spot:
    event = parse_line(line, NOW)
    assert isinstance(event, DxSpot)
    return event.spot


def test_second_skimmer_releases_the_spot_with_q():
    """RBN.pm: `if ($quality < $minqual) { next; }` ... `$comment = sprintf "%-3s %2ddB $quality"`."""
    q = Qualifier()
    first = rbn("DX de KM3T-#:    14100.0  CS3B         CW    24 dB  22 WPM  NCDXF B 2259Z")
    again = rbn("DX de KM3T-#:    14100.0  CS3B         CW    25 dB  22 WPM  NCDXF B 2259Z")
    second = rbn("DX de W3OA-#:    14100.1  CS3B         CW    18 dB  22 WPM  NCDXF B 2259Z")
    assert q.offer(first, 0.0) is None and q.offer(again, 1.0) is None  # the same skimmer twice is Q:1
    out = q.offer(second, 2.0)
    assert out is second and out.comment == "CW  18dB Q:2" and out.extra["skimmer_quality"] == "2"
    plain = rbn("DX de G4ABC:     14025.0  JA1XYZ       cq 2259Z")
    assert q.offer(plain, 3.0) is plain and plain.comment == "cq"  # a human spot passes untouched


def test_lone_skimmer_spot_leaves_limbo():
    """RBN.pm: `$limbotime = 5*60` ... `time in Limbo exceeded DUMPED`."""
    q = Qualifier()
    assert q.offer(rbn("DX de KM3T-#:    7018.3  RW1M         CW    24 dB  22 WPM  CQ 2259Z"), 0.0) is None
    assert len(q) == 1
    late = rbn("DX de W3OA-#:    7018.3  RW1M         CW    20 dB  22 WPM  CQ 2259Z")
    assert q.offer(late, LIMBO + 1) is None  # the first one expired: this is a new first skimmer
    assert len(q) == 1


@settings(max_examples=100)
@given(st.lists(st.sampled_from(RBN), max_size=40))
def test_only_calls_two_skimmers_heard_go_out(lines):
    q = Qualifier()
    spots = [rbn(line) for line in lines]
    out = [s for s in (q.offer(s, float(i)) for i, s in enumerate(spots)) if s is not None]
    for s in out:
        heard = {x.spotter for x in spots if x.dx == s.dx and abs(x.freq - s.freq) <= 0.3}
        assert len(heard) >= 2 and s.comment.endswith(f"Q:{min(int(s.extra['skimmer_quality']), 9)}")


def test_skimmer_kinds_follow_set_skimmer():
    """cmd/set/wantrbn.pl: `$user->wantcw(1) if /^CW/; $user->wantft(1) if /^FT/; $user->wantbeacon(1) if /^BCN|BEA|DXF/`."""
    session = ClusterSession(clock=lambda: NOW)
    session.receive_data(b"G4ABC\r\n")
    ring = SpotRing()
    cw = ring.append(rbn("DX de KM3T-#:    7018.3  RW1M         CW    24 dB  22 WPM  CQ 2259Z"), 0.0)
    beacon = ring.append(rbn("DX de KM3T-#:    14100.0  CS3B         CW    24 dB  22 WPM  NCDXF B 2259Z"), 0.0)
    ft8 = ring.append(rbn("DX de KM3T-#:    7074.0  K1ABC        FT8   -12 dB  FN42  CQ 2259Z"), 0.0)
    assert not any(session.wants(e) for e in (cw, beacon, ft8))  # off by default
    session.receive_data(b"set/skimmer CW\r\n")
    assert [session.wants(e) for e in (cw, beacon, ft8)] == [True, False, False]
    session.receive_data(b"set/skimmer FT BEACON\r\n")
    assert [session.wants(e) for e in (cw, beacon, ft8)] == [False, True, True]
    session.receive_data(b"set/skimmer\r\n")
    assert all(session.wants(e) for e in (cw, beacon, ft8))


async def test_skimmer_spots_are_kept_out_of_sh_dx(nursery):
    """DXSpider keeps RBN spots out of the spot list sh/dx reads (RBN.pm sends them to users only)."""
    hub = Hub()
    await nursery.start(hub.run)
    port = await nursery.start(partial(serve_cluster, hub, "127.0.0.1", 0))
    now = datetime.now(UTC)
    hub.publish(Spot("KM3T-#", 7018.3, "RW1M", "CW  24dB Q:2", now, skimmer=True))
    hub.publish(Spot("G4ABC", 14025.0, "JA1XYZ", "cq", now))
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    buffer = b""
    await stream.send_all(b"G0ABC\r\nsh/dx\r\n")
    with trio.fail_after(10):
        while buffer.count(b"hamsrv >") < 2:
            buffer += await stream.receive_some(4096)
    assert b"JA1XYZ" in buffer and b"RW1M" not in buffer
    await stream.aclose()
