"""hamsrv peered with a real DXSpider node (shared/peers/dxspider, run by tests/dxspider.py): the PC
init sequence, spots both ways, pings, announcements and WWV, watched by a user on each side.

One DXSpider serves the whole module (it takes seconds to start); each test uses its own calls, since
DXSpider keeps its duplicate lists across tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial

import pytest
import trio

from hamsrv.cty import load_default
from hamsrv.firehose.bulletins import Board
from hamsrv.firehose.enrich import make_prepare
from hamsrv.firehose.hub import Hub
from hamsrv.firehose.links import Backoff
from hamsrv.firehose.node import serve_cluster
from hamsrv.firehose.peering import PeerConfig, Peering
from tests.dxspider import DxSpider
from tests.firehose.telnet import Telnet

SAFETY = 30.0  # seconds; only guards against a hung test
DXSPIDER_PROMPT = b"dxspider >\r\n"
HAMSRV_PROMPT = b"hamsrv >\r\n"


@pytest.fixture(scope="module")
def dxspider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DxSpider]:
    node = DxSpider(tmp_path_factory.mktemp("dxspider")).start()
    try:
        yield node
    finally:
        node.stop()


async def wait_for(condition) -> None:
    with trio.fail_after(SAFETY):
        while not condition():
            await trio.sleep(0.05)


class Hamsrv:
    def __init__(self, hub: Hub, board: Board, port: int, peering: Peering):
        self.hub, self.board, self.port, self.peering = hub, board, port, peering

    @property
    def status(self):
        return self.peering.statuses[0]


async def peered(nursery: trio.Nursery, dxspider: DxSpider, **options) -> Hamsrv:
    hub = Hub(prepare=make_prepare(load_default(), trio.current_time), tick=0.01)
    board = Board()
    roster: dict = {}
    nursery.start_soon(hub.run)
    port = await nursery.start(partial(serve_cluster, hub, "127.0.0.1", 0, node_call="GB7HAM", board=board,
                                       roster=roster))
    peering = Peering(hub, board, [PeerConfig.parse(f"127.0.0.1:{dxspider.port}/GB7HAM")],
                      backoff=Backoff(initial=0.5, maximum=1.0), users=lambda: list(roster), **options)
    await nursery.start(peering.run)
    world = Hamsrv(hub, board, port, peering)
    await wait_for(lambda: world.status.state == "normal")
    return world


async def test_dxspider_peering_and_spots_both_ways(nursery, dxspider):
    """DXSpider sends `PC18^DXSpider Version: ... pc9x^5300^` to a registered node; after our PC92 and
    PC20 it answers with PC22 (DXProtHandle.pm handle_20) and spots flow as PC61 both ways."""
    ham = await peered(nursery, dxspider)
    assert ham.status.peer_call == "GB7TST-2"
    spider_user = await Telnet.login(dxspider.port, "G4AAA", DXSPIDER_PROMPT)
    ham_user = await Telnet.login(ham.port, "G0AAA", HAMSRV_PROMPT)
    # hamsrv -> DXSpider: DXSpider's user sees our user's spot (DXCommandmode.pm format_dx_spot)
    await ham_user.command("dx 14011.0 JA1AAA from hamsrv")
    line = await spider_user.line_with(b"JA1AAA")
    assert line.startswith(b"DX de G0AAA:     14011.0  JA1AAA       from hamsrv")
    # DXSpider -> hamsrv: our user sees DXSpider's user's spot, the ring holds it once
    await spider_user.command("dx 21012.0 VK2AAA from dxspider")
    line = await ham_user.line_with(b"VK2AAA")
    assert line.startswith(b"DX de G4AAA:     21012.0  VK2AAA       from dxspider")
    spots = [e.spot for e in ham.hub.ring.after(0) if e.spot.dx == "VK2AAA"]
    assert len(spots) == 1 and spots[0].origin == "GB7TST-2" and spots[0].source == "peer:GB7TST-2"
    assert ham.status.spots_sent == 1  # JA1AAA only: DXSpider's spot did not go back to it


async def test_dxspider_answers_our_pings(nursery, dxspider):
    """DXProtHandle.pm handle_51: `if ($flag == 1) { $self->send(pc51($from, $to, '0')); }`."""
    ham = await peered(nursery, dxspider, ping_interval=1.0, tick=0.1)
    await wait_for(lambda: ham.status.pings_answered >= 2)
    assert ham.status.state == "normal" and ham.status.reconnects == 0


async def test_dxspider_announcements_both_ways(nursery, dxspider):
    """cmd/announce.pl `announce full` goes out as PC93 (DXProtout.pm pc93); users see DXCommandmode.pm
    announce `"$to$target de $_[0]: $text"`; sh/ann lists DXLogPrint.pm `"$d $r->[3] -> $r->[2] $r->[4]"`."""
    ham = await peered(nursery, dxspider)
    spider_user = await Telnet.login(dxspider.port, "G4BBB", DXSPIDER_PROMPT)
    ham_user = await Telnet.login(ham.port, "G0BBB", HAMSRV_PROMPT)
    await ham_user.command("announce full hello from hamsrv")
    # DXSpider users get `\a\a` after announcements (DXCommandmode.pm: `$buf .= "\a\a" if $self->{beep}`)
    line = await spider_user.line_with(b"hello from hamsrv")
    assert line.rstrip(b"\a") == b"To ALL de G0BBB: hello from hamsrv"
    await spider_user.command("announce full hello from dxspider")
    assert await ham_user.line_with(b"hello from dxspider") == b"To ALL de G4BBB: hello from dxspider"
    listing = await ham_user.command("sh/ann")
    assert b" G4BBB -> ALL hello from dxspider\r\n" in listing
    await ham_user.command("announce only here")  # LOCAL: stays on hamsrv (DXProt.pm send_announce)
    await spider_user.command("announce full marker")
    await ham_user.line_with(b"marker")
    assert ham.status.bulletins_sent == 1


async def test_dxspider_wwv_reaches_hamsrv_users(nursery, dxspider):
    """cmd/wwv.pl builds `PC23^$today^$hour^sfi^a^k^forecast^call^mycall^H99`; our users see
    DXCommandmode.pm wwv `"WWV de $_[6] <$_[1]>:   SFI=$_[2], A=$_[3], K=$_[4], $_[5]"` and sh/wwv lists
    Geomag.pm print_item."""
    ham = await peered(nursery, dxspider)
    sysop = await Telnet.login(dxspider.port, dxspider.sysop, DXSPIDER_PROMPT)
    await sysop.command("set/var @Geomag::allowed = qw(G4CCC)")
    spider_user = await Telnet.login(dxspider.port, "G4CCC", DXSPIDER_PROMPT)
    ham_user = await Telnet.login(ham.port, "G0CCC", HAMSRV_PROMPT)
    await spider_user.command("wwv sf=133,a=6,k=2,No Storms")
    line = await ham_user.line_with(b"WWV de G4CCC")
    hour = datetime.now(UTC).hour
    assert line == f"WWV de G4CCC <{hour}>:   SFI=133, A=6, K=2, No Storms".encode()
    listing = await ham_user.command("sh/wwv")
    assert f"   {hour:02d}   133   6   2 No Storms".encode() in listing and b"<G4CCC>" in listing


async def test_sh_dx_lines_equal_dxspiders(nursery, dxspider):
    """The same spot listed by DXSpider's sh/dx (Spot.pm formatl) and by ours, byte for byte."""
    ham = await peered(nursery, dxspider)
    spider_user = await Telnet.login(dxspider.port, "G4DDD", DXSPIDER_PROMPT)
    ham_user = await Telnet.login(ham.port, "G0DDD", HAMSRV_PROMPT)
    await spider_user.command("dx 28021.3 VK3DDD layout check")
    await ham_user.line_with(b"VK3DDD")
    await spider_user.stream.send_all(b"sh/dx VK3DDD\r\n")
    theirs = await spider_user.line_with(b"VK3DDD")
    ours = (await ham_user.command("sh/dx VK3DDD")).split(b"\r\n")[0]
    assert ours == theirs and len(ours) == 77


async def test_dxspider_sees_our_users(nursery, dxspider):
    """Our PC92 C/A records put our users into DXSpider's routing table (DXProtHandle.pm handle_92:
    `if ($sort eq 'A') { for (@nent) { push @radd, _add_thingy($parent, $_, $self, $hops); } }`), so its
    `sh/c` lists them under our node."""
    ham = await peered(nursery, dxspider, tick=0.1)
    ham_user = await Telnet.login(ham.port, "G0EEE", HAMSRV_PROMPT)
    spider_user = await Telnet.login(dxspider.port, "G4EEE", DXSPIDER_PROMPT)
    with trio.fail_after(SAFETY):
        while True:
            await trio.sleep(0.3)
            shown = await spider_user.command("sh/c")
            if b"G0EEE" in shown:
                break
    line = next(row for row in shown.split(b"\r\n") if b"G0EEE" in row)
    assert line.split() == [b"GB7HAM", b"G0EEE"]  # cmd/show/configuration.pl: node, then its users
    await ham_user.stream.aclose()
