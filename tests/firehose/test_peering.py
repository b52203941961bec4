"""Node peering (PC protocol) against a scripted peer on 127.0.0.1 that speaks DXSpider's init sequence,
with hamsrv's real cluster port for the users. The real DXSpider is in test_dxspider.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from hamsrv.cty import load_default
from hamsrv.errors import ConfigError
from hamsrv.firehose import pcprot
from hamsrv.firehose.bulletins import Board
from hamsrv.firehose.enrich import make_prepare
from hamsrv.firehose.hub import Hub
from hamsrv.firehose.links import Backoff
from hamsrv.firehose.node import serve_cluster
from hamsrv.firehose.peer import Close, PeerProtocol, PostBulletin, PublishSpot, SendLine
from hamsrv.firehose.peering import PeerConfig, Peering, parse_peers
from hamsrv.model import Spot
from tests.firehose.telnet import Telnet

SAFETY = 20  # seconds; only guards against a hung test
FAST = Backoff(initial=0.05, maximum=0.1, stable_after=60.0)
TRANSCRIPT = [row[2:] for row in (Path(__file__).parent / "transcripts" / "dxspider_e61ab5ee_node.txt")
              .read_text().splitlines() if row.startswith("< ")]
PC18 = next(line for line in TRANSCRIPT if line.startswith("PC18"))  # what DXSpider e61ab5ee sent
PEER_CONFIG = [line for line in TRANSCRIPT if line.startswith(("PC92", "PC22"))][:3]  # its A, K, PC22


async def wait_for(condition) -> None:
    with trio.fail_after(SAFETY):
        while not condition():
            await trio.sleep(0.01)


class Session:
    def __init__(self, stream: trio.SocketStream, opened: float):
        self.stream, self.opened = stream, opened
        self.closed: float | None = None
        self.login = ""
        self.received: list[str] = []

    async def send(self, *lines: str) -> None:
        await self.stream.send_all("".join(f"{x}\r\n" for x in lines).encode())

    def got(self, prefix: str) -> list[str]:
        return [line for line in self.received if line.startswith(prefix)]


class ScriptedPeer:
    """Speaks like DXSpider to a node that logs in (DXProt.pm start -> sendinit: PC18 first), answers
    PC20 with its PC92 A/K records and PC22 (DXProtHandle.pm handle_20), answers pings when told to."""

    def __init__(self, call: str = "GB7TST-2", answer_pings: bool = True, pc18: str = PC18):
        self.call, self.answer_pings, self.pc18 = call, answer_pings, pc18
        self.sessions: list[Session] = []

    @property
    def last(self) -> Session:
        return self.sessions[-1]

    async def handle(self, stream: trio.SocketStream) -> None:
        session = Session(stream, trio.current_time())
        self.sessions.append(session)
        buffer = b""
        try:
            await stream.send_all(b"login: ")
            while True:
                data = await stream.receive_some(4096)
                if not data:
                    return
                buffer += data
                while b"\r\n" in buffer:
                    raw, _, buffer = buffer.partition(b"\r\n")
                    line = raw.decode()
                    if not session.login:
                        session.login = line
                        if self.pc18:
                            await session.send("0", self.pc18)
                        continue
                    session.received.append(line)
                    if line == "PC20^":
                        config = PEER_CONFIG if "pc9x" in self.pc18 else ["PC22^"]
                        await session.send(*[x.replace("GB7TST-2", self.call) for x in config])
                    elif line.startswith(f"PC51^{self.call}^") and line.endswith("^1^") and self.answer_pings:
                        frm = line.split("^")[2]
                        await session.send(pcprot.pc51(frm, self.call, False))
        except trio.BrokenResourceError:
            pass
        finally:
            session.closed = trio.current_time()


async def start_peer(nursery: trio.Nursery, peer: ScriptedPeer) -> int:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    await nursery.start(trio.serve_listeners, peer.handle, listeners)
    return listeners[0].socket.getsockname()[1]


class Client(Telnet):
    """A telnet user of hamsrv's cluster port."""

    def __init__(self, stream: trio.SocketStream):
        super().__init__(stream, b"hamsrv >\r\n")


class World:
    """hamsrv's side: a deduplicating hub, the bulletin board, the cluster port and the peering."""

    def __init__(self, hub: Hub, board: Board, port: int, peering: Peering):
        self.hub, self.board, self.port, self.peering = hub, board, port, peering

    async def user(self, call: str = "G4ABC") -> Client:
        client = Client(await trio.open_tcp_stream("127.0.0.1", self.port))
        await client.read_until(b"login: ")
        await client.stream.send_all(call.encode() + b"\r\n")
        await client.read_until(b"hamsrv >\r\n")
        return client

    def ring(self) -> list[Spot]:
        return [e.spot for e in self.hub.ring.after(0)]


async def start_world(nursery: trio.Nursery, peers: list[int], node_call: str = "GB7HAM", **options) -> World:
    hub = Hub(prepare=make_prepare(load_default(), trio.current_time), tick=0.01)
    board = Board()
    roster: dict = {}
    nursery.start_soon(hub.run)
    port = await nursery.start(partial(serve_cluster, hub, "127.0.0.1", 0, node_call=node_call, board=board,
                                       roster=roster))
    configs = [PeerConfig.parse(f"127.0.0.1:{p}/GB7HAM") for p in peers]
    peering = Peering(hub, board, configs, backoff=options.pop("backoff", FAST), users=lambda: list(roster),
                      **options)
    await nursery.start(peering.run)
    return World(hub, board, port, peering)


def now_pc61(dx: str, spotter: str, origin: str, hops: int = 30, comment: str = "peer spot",
             freq: float = 14025.0, minutes_ago: int = 0) -> str:
    spot = Spot(spotter, freq, dx, comment, datetime.now(UTC) - timedelta(minutes=minutes_ago))
    return pcprot.pc61(spot, origin, "192.0.2.7", hops)


async def up(world: World, peer: ScriptedPeer, index: int = 0) -> Session:
    await wait_for(lambda: peer.sessions and world.peering.statuses[index].state == "normal")
    return peer.last


# ---- tests --------------------------------------------------------------------------------------


def test_peer_setting_form():
    assert parse_peers("dxc.example.org:7300/GB7HAM, 127.0.0.1:27300/g0abc-2") == [
        PeerConfig("dxc.example.org", 7300, "GB7HAM"), PeerConfig("127.0.0.1", 27300, "G0ABC-2")]
    for bad in ("dxc.example.org/GB7HAM", "dxc.example.org:7300", "host:7300/not a call", ":7300/GB7HAM"):
        with pytest.raises(ConfigError, match="HAMSRV_CLUSTER_PEERS"):
            parse_peers(bad)


async def test_init_sequence_and_a_user_spot_reaches_the_peer_as_pc61(nursery):
    """DXProtHandle.pm handle_18 on an outbound node: `$self->send_local_config(); $self->send(pc20());`;
    a user's `dx` goes out as DXProtout.pm pc61 with `$main::mycall` as origin and H30."""
    peer = ScriptedPeer()
    world = await start_world(nursery, [await start_peer(nursery, peer)])
    session = await up(world, peer)
    assert session.login == "GB7HAM"
    assert session.received[0].startswith("PC92^GB7HAM^") and "^K^5GB7HAM:5455:0^0^" in session.received[0]
    assert session.received[1] == "PC20^"
    assert world.peering.statuses[0].peer_call == "GB7TST-2"  # learnt from its PC92 records
    user = await world.user("G4ABC")
    await user.command("dx 14025 K1ABC hello from hamsrv")
    await wait_for(lambda: session.got("PC61"))
    [pc61] = session.got("PC61")
    fields = pc61.split("^")
    assert fields[1:3] == ["14025.0", "K1ABC"] and fields[5:] == [
        "hello from hamsrv", "G4ABC", "GB7HAM", "127.0.0.1", "H30", "~"]
    assert world.peering.statuses[0].spots_sent == 1


async def test_our_users_are_announced_with_pc92_c_a_d(nursery):
    """DXProtout.pm pc92c (`_gen_pc92('C', 1, ...)`) after the peer's PC22, then pc92a / pc92d as users
    come and go (`PC92^GB7HAM^<t>^A^^1G4ABC^H99^`, our own slot left empty as `$pc9x_nodupe_first_slot`)."""
    peer = ScriptedPeer()
    world = await start_world(nursery, [await start_peer(nursery, peer)], tick=0.02)
    session = await up(world, peer)
    await wait_for(lambda: session.got("PC92^GB7HAM^") and "^C^" in session.got("PC92^GB7HAM^")[-1])
    assert session.got("PC92^GB7HAM^")[-1].endswith("^C^5GB7HAM:5455^H99^")  # nobody logged in yet
    user = await world.user("G4ABC")
    await wait_for(lambda: any("^A^^1G4ABC^H99^" in x for x in session.got("PC92^GB7HAM^")))
    await user.stream.send_all(b"bye\r\n")
    await wait_for(lambda: any("^D^^1G4ABC^H99^" in x for x in session.got("PC92^GB7HAM^")))
    ids = [float(x.split("^")[2]) for x in session.got("PC92^GB7HAM^")]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # DXSpider drops a repeated id (check_pc9x_t)


async def test_peer_spot_reaches_users_and_firehose_once(nursery):
    """The same spot as PC61, again as PC61 and as PC11 (DXSpider keeps PC11 back for a better PC61,
    DXProtHandle.pm: `saved PC11 spot $key dumped, better pc61 received`) lands in the ring once."""
    peer = ScriptedPeer()
    world = await start_world(nursery, [await start_peer(nursery, peer)])
    session = await up(world, peer)
    user = await world.user("G4ABC")
    pc61 = now_pc61("JA1XYZ", "G0XYZ", "GB7TST-2")
    f = pc61.split("^")
    pc11 = "^".join(["PC11", *f[1:8], "H30", "~"])
    await session.send(pc61, pc11, pc61)
    line = await user.read_until(b"\r\n")
    assert line.startswith(b"DX de G0XYZ:") and b"JA1XYZ" in line and b"peer spot" in line
    await wait_for(lambda: world.peering.statuses[0].spots_received == 3)
    await trio.sleep(0.1)  # a few hub ticks: a second copy would show now
    assert [s.dx for s in world.ring()] == ["JA1XYZ"]
    spot = world.ring()[0]
    assert (spot.source, spot.origin, spot.extra["hops"]) == ("peer:GB7TST-2", "GB7TST-2", "29")
    assert b"JA1XYZ" not in user.buffer  # the user did not get it twice
    assert not session.got("PC61")  # nor did it go back to the peer it came from


async def test_loops_and_stale_spots_are_suppressed(nursery):
    """Our own spot coming back, a spot out of hops (DXProt.pm normal: `return if $hops < 0`), one older
    than `$pc11_max_age = 1*3600`, one more than 900 s ahead, and one outside the amateur bands."""
    peer = ScriptedPeer()
    world = await start_world(nursery, [await start_peer(nursery, peer)])
    session = await up(world, peer)
    await session.send(now_pc61("K1AAA", "G0XYZ", "GB7HAM"),  # ours, looped back
                       now_pc61("K1BBB", "G0XYZ", "GB7XYZ", hops=0),
                       now_pc61("K1CCC", "G0XYZ", "GB7XYZ", minutes_ago=61),
                       now_pc61("K1DDD", "G0XYZ", "GB7XYZ", minutes_ago=-16),
                       now_pc61("K1EEE", "G0XYZ", "GB7XYZ", freq=15000.0),
                       now_pc61("K1FFF", "G0XYZ", "GB7XYZ", minutes_ago=59))
    await wait_for(lambda: world.ring())
    await trio.sleep(0.1)
    assert [s.dx for s in world.ring()] == ["K1FFF"]
    assert world.peering.statuses[0].dropped == {
        "our own spot came back": 1, "hops exhausted": 1, "spot too old or in the future": 2,
        "spot outside the amateur bands": 1}


async def test_spots_pass_between_two_peers_with_hops_lowered(nursery):
    a, b = ScriptedPeer("GB7AAA"), ScriptedPeer("GB7BBB")
    world = await start_world(nursery, [await start_peer(nursery, a), await start_peer(nursery, b)])
    sa, sb = await up(world, a, 0), await up(world, b, 1)
    await sa.send(now_pc61("VK2XYZ", "G0XYZ", "GB7AAA", hops=12))
    await wait_for(lambda: sb.got("PC61"))
    assert sb.got("PC61")[0].endswith("^G0XYZ^GB7AAA^192.0.2.7^H11^~")
    await sa.send(now_pc61("VK3XYZ", "G0XYZ", "GB7AAA", hops=1))  # arrives with 0 left: ends here
    await wait_for(lambda: len(world.ring()) == 2)
    await trio.sleep(0.1)
    assert len(sb.got("PC61")) == 1 and not sa.got("PC61")


async def test_ping_is_answered_and_ours_are_answered(nursery):
    """DXProtHandle.pm handle_51: `if ($flag == 1) { $self->send(pc51($from, $to, '0')); }`."""
    peer = ScriptedPeer()
    world = await start_world(nursery, [await start_peer(nursery, peer)], ping_interval=0.2, tick=0.02)
    session = await up(world, peer)
    await session.send("PC51^GB7HAM^GB7TST-2^1^", "PC51^GB7OTHER^GB7TST-2^1^")
    await wait_for(lambda: session.got("PC51^GB7TST-2^GB7HAM^0^"))
    await wait_for(lambda: len(session.got("PC51^GB7TST-2^GB7HAM^1^")) >= 4)  # ours, answered each time
    status = world.peering.statuses[0]
    assert status.state == "normal" and status.reconnects == 0 and len(peer.sessions) == 1
    assert len(session.got("PC51^GB7TST-2^GB7HAM^0^")) == 1  # the ping for another node got no answer


async def test_dead_peer_is_detected_and_redialled_with_backoff(nursery):
    """DXProt.pm process: `if ($dxchan->{nopings} <= 0) { ... $dxchan->disconnect; } else { ...
    $dxchan->{nopings} -= 1; ... }` with `$obscount = 2`: two unanswered pings, then the link goes."""
    peer = ScriptedPeer(answer_pings=False)
    backoff = Backoff(initial=0.5, maximum=0.5, stable_after=60.0)
    world = await start_world(nursery, [await start_peer(nursery, peer)], ping_interval=0.2, tick=0.02,
                              backoff=backoff, draw=lambda: 1.0)
    first = await up(world, peer)
    await wait_for(lambda: len(peer.sessions) >= 2)
    status = world.peering.statuses[0]
    assert status.last_error == "no answer to 2 pings" and status.reconnects == 1
    assert len(first.got("PC51^GB7TST-2^GB7HAM^1^")) == 2
    assert first.closed is not None and peer.sessions[1].opened - first.closed >= 0.5  # the backoff


async def test_old_software_gets_pc19_and_pc11(nursery):
    """DXProt.pm send_dx_spot: `if ($line =~ /PC61/ && !($dxchan->is_spider || $dxchan->is_user))`
    the spot goes out as PC11; without pc9x the config is a PC19 (send_local_config, traditional)."""
    peer = ScriptedPeer("AR1ABC", pc18="PC18^AR-Cluster Version 6^5300^")
    world = await start_world(nursery, [await start_peer(nursery, peer)])
    session = await up(world, peer)
    assert session.received[:2] == ["PC19^1^GB7HAM^0^5455^H25^", "PC20^"]
    user = await world.user()
    await user.command("dx 7005 K1ABC")
    await wait_for(lambda: session.got("PC11"))
    assert session.got("PC11")[0].endswith("^ ^G4ABC^GB7HAM^H25^~")


async def test_announcements_leave_with_the_peering_call(nursery):
    """A user's `announce full` goes to old software as DXProtout.pm pc12 (`PC12^$call^$tonode^$text^$sysop^
    $origin^$wx^$hops^~`) with the call the peer knows us by, even when HAMSRV_NODE_CALL differs."""
    peer = ScriptedPeer("AR1ABC", pc18="PC18^AR-Cluster Version 6^5300^")
    world = await start_world(nursery, [await start_peer(nursery, peer)], node_call="HAMSRV")
    session = await up(world, peer)
    user = await world.user()
    await user.command("announce full hello net")
    await user.command("announce only this node")
    await wait_for(lambda: session.got("PC12"))
    assert session.got("PC12") == ["PC12^G4ABC^*^hello net^ ^GB7HAM^0^H30^~"]
    await session.send("PC12^G0XYZ^*^back at you^ ^AR1ABC^0^H30^~")
    lines = (await user.read_until(b"back at you\r\n")).split(b"\r\n")
    assert b"To ALL de G0XYZ: back at you" in lines and b"To LOCAL de G4ABC: only this node" in lines


async def test_peer_that_never_initialises_is_given_up(nursery):
    """A node that logs us in but never sends PC18/PC22 is dropped after the init timeout and re-dialled."""
    peer = ScriptedPeer(pc18="")
    world = await start_world(nursery, [await start_peer(nursery, peer)], tick=0.02, init_timeout=0.3)
    await wait_for(lambda: len(peer.sessions) >= 2)
    assert world.peering.statuses[0].last_error == "no PC18/PC22 initialisation from the peer"
    assert peer.sessions[0].received == []  # we said nothing but our call


@settings(max_examples=300)
@given(st.lists(st.one_of(st.text(max_size=120), st.sampled_from(TRANSCRIPT),
                          st.lists(st.text(max_size=12), max_size=14).map(
                              lambda f: "^".join(["PC" + str(len(f) * 7 % 90 + 10), *f]))), max_size=20),
       st.floats(0, 10_000))
def test_peer_protocol_never_raises(lines, now):
    """Whatever a peer sends, the sans-I/O side answers with actions and never raises."""
    protocol = PeerProtocol("GB7HAM", clock=lambda: datetime.now(UTC))
    for line in lines:
        for action in protocol.receive_line(line) + protocol.tick(now):
            assert isinstance(action, SendLine | PublishSpot | PostBulletin | Close)
