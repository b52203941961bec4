"""The cluster TCP port against real sockets on 127.0.0.1: users, feeds, fan-out, slow clients."""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime
from functools import partial

import pytest
import trio
import trio.testing

from hamsrv.errors import ConfigError
from hamsrv.firehose import node as node_module
from hamsrv.firehose.hub import Hub
from hamsrv.firehose.node import ClusterLimits, FeedPolicy, serve_cluster
from hamsrv.firehose.ring import SpotRing
from hamsrv.metrics import Registry
from hamsrv.model import Spot

SAFETY = 20  # seconds; only guards against a hung test, nothing is timed


class Client:
    """A telnet user: a plain TCP stream and a receive buffer."""

    def __init__(self, stream: trio.SocketStream):
        self.stream = stream
        self.buffer = b""

    async def read_until(self, marker: bytes) -> bytes:
        with trio.fail_after(SAFETY):
            while marker not in self.buffer:
                data = await self.stream.receive_some(65536)
                if not data:
                    raise EOFError(f"closed before {marker!r}; got {self.buffer[-200:]!r}")
                self.buffer += data
        head, _, self.buffer = self.buffer.partition(marker)
        return head + marker

    async def read_to_eof(self) -> bytes:
        with trio.fail_after(SAFETY):
            while data := await self.stream.receive_some(65536):
                self.buffer += data
        return self.buffer

    async def command(self, line: str) -> bytes:
        await self.stream.send_all(line.encode() + b"\r\n")
        return await self.read_until(b"hamsrv >\r\n")

    async def spot_lines(self, n: int) -> list[bytes]:
        lines: list[bytes] = []
        while len(lines) < n:
            line = await self.read_until(b"\r\n")
            if line.startswith(b"DX de "):
                lines.append(line)
        return lines


class Node:
    def __init__(self, hub: Hub, port: int, metrics: Registry):
        self.hub, self.port, self.metrics = hub, port, metrics

    async def connect(self, call: str | None = "G0ABC") -> Client:
        client = Client(await trio.open_tcp_stream("127.0.0.1", self.port))
        await client.read_until(b"login: ")
        if call:
            await client.stream.send_all(call.encode() + b"\r\n")
            await client.read_until(b"hamsrv >\r\n")
        return client

    def publish(self, dx: str = "K1ABC", freq: float = 14025.0, spotter: str = "W1AW") -> None:
        self.hub.publish(Spot(spotter=spotter, freq=freq, dx=dx, comment="test",
                              time=datetime.now(UTC)))

    def metric(self, name: str) -> float:
        match = re.search(rf"^{name} (\S+)$", self.metrics.render(), re.MULTILINE)
        assert match, name
        return float(match[1])


async def start_node(nursery: trio.Nursery, ring: SpotRing | None = None, run_hub: bool = True,
                     **kwargs) -> Node:
    """A node on a free port; with run_hub=False the test calls hub.flush_tick() itself (ticks by hand)."""
    hub, metrics = Hub(ring), Registry()
    if run_hub:
        await nursery.start(hub.run)
    kwargs.setdefault("feeds", FeedPolicy.parse("127.0.0.1"))
    port = await nursery.start(partial(serve_cluster, hub, "127.0.0.1", 0, node_call="GB7HAM",
                                       metrics=metrics, **kwargs))
    return Node(hub, port, metrics)


@pytest.fixture
async def node(nursery) -> Node:
    return await start_node(nursery)


async def test_login_spot_and_show_dx(node):
    client = Client(await trio.open_tcp_stream("127.0.0.1", node.port))
    greeting = await client.read_until(b"login: ")
    assert b"GB7HAM" in greeting
    await client.stream.send_all(b"g0abc\r\n")
    prompt = await client.read_until(b"hamsrv >\r\n")
    assert re.search(rb"G0ABC de GB7HAM [ \d]\d-\w{3}-\d{4} \d{4}Z hamsrv >\r\n$", prompt)

    await client.command("DX 14025.0 IP0TRC test")
    [line] = await client.spot_lines(1)
    assert line.startswith(b"DX de G0ABC:     14025.0  IP0TRC       test ")
    assert node.metric("hamsrv_cluster_user_spots_total") == 1
    assert node.metric("hamsrv_cluster_users") == 1

    for n in range(7):
        node.publish(dx=f"K{n}ABC")
    await client.spot_lines(7)
    listing = await client.command("sh/dx 5")
    rows = [r for r in listing.split(b"\r\n") if r.startswith(b"  14025.0")]
    assert [r.split()[1] for r in rows] == [b"K6ABC", b"K5ABC", b"K4ABC", b"K3ABC", b"K2ABC"]


async def test_filter_drops_other_band(node):
    client = await node.connect()
    reply = await client.command("accept/spots on 40m")
    assert b"accept/spots 1 on 40m" in reply
    node.publish(dx="K1ABC", freq=14025.0)
    node.publish(dx="K2ABC", freq=7025.0)
    [line] = await client.spot_lines(1)
    assert b"K2ABC" in line and b"K1ABC" not in client.buffer


async def test_bad_input_gets_error_line_and_connection_stays(node):
    client = await node.connect()
    assert b"not in an amateur band" in await client.command("DX 99999 IP0TRC")
    assert b"Invalid command" in await client.command("frobnicate")
    assert b"unknown band" in await client.command("accept/spots on 21m")
    assert len(node.hub.ring) == 0


async def test_duplicate_user_spot_is_reported(nursery):
    hub, metrics = Hub(prepare=lambda s: None if s.dx == "DUP1AA" else s), Registry()
    await nursery.start(hub.run)
    port = await nursery.start(partial(serve_cluster, hub, "127.0.0.1", 0, metrics=metrics))
    client = await Node(hub, port, metrics).connect()
    assert b"duplicate spot" in await client.command("DX 14025 DUP1AA")


async def test_feed_by_address_keeps_original_spotter(node):
    user = await node.connect()
    await user.command("set/skimmer")  # skimmer spots are off until asked for, as on DXSpider
    feed = await node.connect(call=None)
    now = datetime.now(UTC)
    await feed.stream.send_all(
        b"DX de KM3T-2-#:  14100.0  CS3B           CW    24 dB  22 WPM  NCDXF B 2259Z\r\n"
        + f"PC61^14030.5^ZF2NUE^{now.day:2d}-{now:%b-%Y}^{now:%H%M}Z^ ^ND4X^W4NJA^72.51.152.150^H96^~\r\n".encode())
    first, second = await user.spot_lines(2)
    assert first.startswith(b"DX de KM3T-2-#:  14100.0  CS3B ")
    assert second.startswith(b"DX de ND4X:      14030.5  ZF2NUE ")
    spots = [e.spot for e in list(node.hub.ring.newest_first())[1::-1]]
    assert spots[1].origin == "W4NJA" and spots[0].source == "feed"
    assert node.metric("hamsrv_cluster_feed_spots_total") == 2
    assert node.metric("hamsrv_cluster_feeds") == 1
    assert feed.buffer == b""  # a feed gets no prompts


async def test_feed_by_token_from_untrusted_address(nursery):
    node = await start_node(nursery, feeds=FeedPolicy.parse("10.0.0.0/8,token:s3cret"))
    user = await node.connect()
    intruder = await node.connect(call=None)
    await intruder.stream.send_all(b"DX de K1ABC:     14025.0  IP0TRC  cq  1307Z\r\n")
    assert b"invalid login" in await intruder.read_until(b"login: ")
    feed = await node.connect(call=None)
    await feed.stream.send_all(b"W1AW s3cret\r\nDX de K1ABC:     14025.0  IP0TRC  cq  1307Z\r\n")
    [line] = await user.spot_lines(1)
    assert line.startswith(b"DX de K1ABC:")
    assert next(node.hub.ring.newest_first()).spot.source == "feed:W1AW"


async def test_bye_closes(node):
    client = await node.connect()
    await client.stream.send_all(b"bye\r\n")
    assert b"73 G0ABC" in await client.read_to_eof()
    with trio.fail_after(SAFETY):
        while node.metric("hamsrv_cluster_users") != 0:
            await trio.sleep(0.01)


async def test_many_clients_get_the_same_spots(node):
    clients = []
    for _ in range(200):
        clients.append(await node.connect())
    for n in range(20):
        node.publish(dx=f"K{n}AB", freq=14000.0 + n)
    expected = None
    async with trio.open_nursery() as readers:
        results: list[list[bytes]] = []

        async def read(client: Client) -> None:
            results.append(await client.spot_lines(20))

        for client in clients:
            readers.start_soon(read, client)
    for lines in results:
        expected = expected or lines
        assert lines == expected
    assert len(results) == 200 and len(expected or []) == 20


async def test_client_that_never_reads_does_not_stall_others(nursery):
    node = await start_node(nursery, write_timeout=2.0)
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a tiny window
    await sock.connect(("127.0.0.1", node.port))
    silent = Client(trio.SocketStream(sock))
    await silent.stream.send_all(b"SLOW1\r\n")
    reader = await node.connect()
    with trio.fail_after(SAFETY):
        while node.metric("hamsrv_cluster_users") != 2:
            await trio.sleep(0.01)

    total = 20_000  # about 1.5 MB of lines: far more than the silent client's buffers hold
    async with trio.open_nursery() as pusher:
        async def push() -> None:
            for n in range(total):
                node.publish(dx=f"K{n % 10}A{n % 100:02d}", freq=14000.0 + n % 300)
                if n % 500 == 0:
                    await trio.sleep(0)
        pusher.start_soon(push)
        lines = await reader.spot_lines(total)
    assert len(lines) == total
    with trio.fail_after(SAFETY):  # the silent client is then dropped (once its tasks end), the reader stays
        while node.metric("hamsrv_cluster_stalled_total") != 1 or node.metric("hamsrv_cluster_users") != 1:
            await trio.sleep(0.05)
    node.publish(dx="LAST1A")
    [last] = await reader.spot_lines(1)
    assert b"LAST1A" in last


async def test_user_behind_the_ring_gets_gap_line(nursery):
    node = await start_node(nursery, ring=SpotRing(max_count=5))
    client = await node.connect()
    for n in range(20):  # all in one go: the ring drops 15 before the writer runs
        node.publish(dx=f"K{n}AB")
    gap = await client.read_until(b"spots skipped\r\n")
    assert gap.endswith(b"*** gap: 15 spots skipped\r\n")
    lines = await client.spot_lines(5)
    assert [line.split()[4] for line in lines] == [f"K{n}AB".encode() for n in range(15, 20)]


async def test_login_timeout(nursery):
    node = await start_node(nursery, login_timeout=0.2)
    client = await node.connect(call=None)
    assert b"login timed out" in await client.read_to_eof()


async def test_shutdown_notifies_connected_users():
    async with trio.open_nursery() as nursery:
        node = await start_node(nursery)
        client = await node.connect()
        nursery.cancel_scope.cancel()
    assert b"*** node shutting down" in await client.read_to_eof()


def test_feed_policy_parse():
    policy = FeedPolicy.parse(" 127.0.0.1, 10.0.0.0/8 ,token:s3cret,,::1")
    assert policy.tokens == ("s3cret",)
    assert policy.trusts("127.0.0.1") and policy.trusts("10.2.3.4") and policy.trusts("::1")
    assert policy.trusts("::ffff:10.0.0.7")
    assert not policy.trusts("192.0.2.1") and not policy.trusts("not an address")
    assert not FeedPolicy.parse("").trusts("127.0.0.1")
    for bad in ("localhost", "token:", "10.0.0.0/33", "token:a b"):
        with pytest.raises(ConfigError, match="HAMSRV_CLUSTER_FEEDS"):
            FeedPolicy.parse(bad)


# ---------------------------------------------------------------- limits (issue 10)

async def test_connection_caps_per_ip_and_in_all(nursery) -> None:
    node = await start_node(nursery, feeds=FeedPolicy(), limits=ClusterLimits(max_connections=5, per_ip=3))
    first = [await node.connect(f"G{i}ABC") for i in range(3)]
    refused = Client(await trio.open_tcp_stream("127.0.0.1", node.port))
    assert b"no room for more connections" in await refused.read_to_eof()
    await first[0].stream.aclose()
    with trio.fail_after(SAFETY):  # the freed place is taken again
        while node.metric("hamsrv_cluster_users") != 2:
            await trio.sleep(0.01)
    await node.connect("G9ABC")
    assert node.metric("hamsrv_cluster_refused_total") == 1
    trusted = await start_node(nursery, limits=ClusterLimits(max_connections=1, per_ip=1))
    feeds = [await trusted.connect(f"G{i}ABC") for i in range(3)]  # 127.0.0.1 is a trusted feed there
    assert trusted.metric("hamsrv_cluster_refused_total") == 0 and len(feeds) == 3


async def test_idle_user_is_let_go_and_input_keeps_one(nursery) -> None:
    node = await start_node(nursery, feeds=FeedPolicy(), limits=ClusterLimits(idle_timeout=1.5))
    idle, busy = await node.connect("G1ABC"), await node.connect("G2ABC")
    for _ in range(10):
        await busy.command("sh/filter")
        await trio.sleep(0.2)
    assert b"idle for 1.5 s, goodbye" in await idle.read_to_eof()
    assert b"hamsrv >" in await busy.command("sh/filter")  # still there after 2 s of typing


async def test_user_spot_rate(nursery) -> None:
    node = await start_node(nursery, feeds=FeedPolicy(), limits=ClusterLimits(spots_per_minute=3))
    user = await node.connect()
    replies = [await user.command(f"DX {14000 + i}.0 K{i}ABC test") for i in range(5)]
    assert [b"too many spots" in r for r in replies] == [False, False, False, True, True]
    assert node.metric("hamsrv_cluster_user_spots_total") == 3
    assert node.metric("hamsrv_cluster_spots_rate_limited_total") == 2


async def test_announce_talk_who_and_rate_limit(nursery):
    """Announcements reach every user (`To LOCAL de G0ABC: ...`, cmd/announce.pl `my $via = 'LOCAL';`),
    talks only their addressee (`"$to de $from: $line"`), `e7 => q{callsign $_[0] not visible on the
    cluster}` for a call not logged in, `dup => q{Sorry, this is a duplicate}`, then the rate limit."""
    node = await start_node(nursery, limits=ClusterLimits(posts_per_minute=3))
    alice, bob = await node.connect("G0ABC"), await node.connect("M0XYZ")
    await alice.command("announce hello everyone")
    assert await bob.read_until(b"\r\n") == b"To LOCAL de G0ABC: hello everyone\r\n"
    assert b"To LOCAL de G0ABC: hello everyone" in await alice.read_until(b"everyone\r\n")
    await alice.command("talk m0xyz psst")
    assert await bob.read_until(b"\r\n") == b"M0XYZ de G0ABC: psst\r\n"
    assert b"callsign K1ABC not visible on the cluster" in await alice.command("talk K1ABC hi")
    assert b"Sorry, this is a duplicate" in await alice.command("announce hello everyone")
    assert b"too many announcements" in await alice.command("announce once more")
    who = await alice.command("who")
    assert re.search(rb"\n     G0ABC USER EXT  [ \d]\d-\w{3}-\d{4} \d{4}Z           +127\.0\.0\.1", who)
    assert b"Callsigns connected to GB7HAM\r\nG0ABC        M0XYZ" in await alice.command("sh/users")
    assert b"G0ABC -> LOCAL hello everyone" in await bob.command("sh/ann")
    assert b"psst" not in alice.buffer


async def test_settings_are_remembered_between_logins(node):
    """DXSpider keeps a user's settings in its user file; here they last for the life of the process."""
    client = await node.connect("G4ABC")
    await client.command("set/skimmer CW")
    await client.command("accept/spots on hf/cw and not by_zone 14")
    await client.command("set/name Fred")
    await client.stream.send_all(b"bye\r\n")
    await client.read_to_eof()
    again = await node.connect("G4ABC")
    shown = await again.command("sh/filter")
    assert b"accept/spots 1 on hf/cw and not by_zone 14" in shown and b"skimmer spots: CW" in shown
    assert b"Fred" in await again.command("who")
    other = await node.connect("M0XYZ")
    assert b"no spot filter" in await other.command("sh/filter")


async def test_hub_statistics_count_spots_and_duplicates():
    hub = Hub(prepare=lambda s: None if s.dx == "DUP1AA" else s)
    for dx in ("K1ABC", "DUP1AA", "K2ABC"):
        hub.publish(Spot(spotter="G4ABC", freq=14025.0, dx=dx, comment="", time=datetime.now(UTC)))
    assert hub.statistics().announced_seq == 0
    hub.flush_tick()
    stats = hub.statistics()
    assert (stats.spots_in, stats.duplicates, stats.ring_spots, stats.announced_seq) == (2, 1, 2, 2)


# ---- one pass per read, one write per read; feeds read once per tick (issue 12)

LINE = b"DX de K1ABC:     14025.0  IP0TRC       cq                             1307Z\r\n"


def feed_line(n: int) -> bytes:
    return LINE.replace(b"IP0TRC", f"IP{n}TRC".encode())


async def test_several_user_lines_in_one_read_get_one_write(node, monkeypatch):
    writes: list[bytes] = []
    send = node_module._Connection._send

    async def counted(self: node_module._Connection, data: bytes) -> None:
        writes.append(data)
        await send(self, data)

    client = await node.connect()
    monkeypatch.setattr(node_module._Connection, "_send", counted)
    await client.stream.send_all(b"set/name Fred\r\nsh/filter\r\nset/na")  # ends inside a line
    await client.read_until(b"no spot filter")
    await client.read_until(b"hamsrv >\r\n")
    assert len(writes) == 1 and writes[0].count(b"hamsrv >\r\n") == 2
    await client.stream.send_all(b"me Bob\r\n")  # the rest of the line, in the next read
    await client.read_until(b"hamsrv >\r\n")
    assert len(writes) == 2 and b"Bob" in writes[1]
    assert b"Bob" in await client.command("who")


async def feed_switched(node: Node, client: Client) -> None:
    """Wait until the node took `client` for a feed and its reader went quiet."""
    with trio.fail_after(SAFETY):
        while node.metric("hamsrv_cluster_feeds") != 1:
            await trio.sleep(0.01)
    await trio.testing.wait_all_tasks_blocked()


async def test_feed_lines_are_taken_at_the_tick_they_arrived_in(nursery):
    node = await start_node(nursery, run_hub=False)
    feed = await node.connect(call=None)
    await feed.stream.send_all(feed_line(0))
    await feed_switched(node, feed)
    node.hub.flush_tick()
    assert node.hub.ring.last_seq == node.hub.announced_seq == 1  # the first line went the usual way
    await feed.stream.send_all(feed_line(1) + feed_line(2) + feed_line(3)[:30])  # 2 lines and a half
    node.hub.flush_tick()
    assert node.hub.ring.last_seq == node.hub.announced_seq == 3  # published and announced in this tick
    await feed.stream.send_all(feed_line(3)[30:])
    node.hub.flush_tick()
    assert [e.spot.dx for e in node.hub.ring.after(0)] == ["IP0TRC", "IP1TRC", "IP2TRC", "IP3TRC"]
    assert node.metric("hamsrv_cluster_feed_spots_total") == 4
    node.hub.flush_tick()  # nothing new: nothing published, the feed is still there
    assert node.hub.ring.last_seq == 4 and node.metric("hamsrv_cluster_feeds") == 1
    assert feed.buffer == b""  # no prompt, no echo, no spots for a feed

    await feed.stream.send_all(b"bye\r\n")
    node.hub.flush_tick()
    assert b"73 feed" in await feed.read_to_eof()
    with trio.fail_after(SAFETY):
        while node.metric("hamsrv_cluster_feeds") != 0:
            await trio.sleep(0.01)


async def test_feed_that_hangs_up_is_let_go_at_the_next_tick(nursery):
    node = await start_node(nursery, run_hub=False)
    feed = await node.connect(call=None)
    await feed.stream.send_all(feed_line(0))
    await feed_switched(node, feed)
    await feed.stream.send_all(feed_line(1))
    await feed.stream.aclose()
    node.hub.flush_tick()
    assert node.hub.ring.last_seq == 2  # what it sent before hanging up still counts
    node.hub.flush_tick()  # this tick's read finds the end
    with trio.fail_after(SAFETY):
        while node.metric("hamsrv_cluster_feeds") != 0:
            await trio.sleep(0.01)


async def test_trusted_user_that_pushes_becomes_a_feed(node):
    pusher = await node.connect("N1BNC")
    assert node.metric("hamsrv_cluster_users") == 1
    await pusher.stream.send_all(LINE)
    await feed_switched(node, pusher)
    assert node.metric("hamsrv_cluster_users") == 0
    await pusher.stream.send_all(feed_line(1))
    user = await node.connect()
    node.publish(dx="K2ABC")
    await user.spot_lines(1)
    await trio.testing.wait_all_tasks_blocked()
    assert pusher.buffer == b""  # neither prompts nor spots go to a feed
    sources = {e.spot.dx: e.spot.source for e in node.hub.ring.after(0)}
    assert sources == {"IP0TRC": "feed:N1BNC", "IP1TRC": "feed:N1BNC", "K2ABC": "cluster"}


async def test_a_bug_in_a_feed_ends_that_feed_not_the_hub(nursery, monkeypatch):
    node = await start_node(nursery, run_hub=False)
    feed = await node.connect(call=None)
    await feed.stream.send_all(feed_line(0))
    await feed_switched(node, feed)

    def broken(self: object, line: str) -> list[object]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(node_module.ClusterSession, "_feed_line", broken)
    await feed.stream.send_all(feed_line(1))
    node.hub.flush_tick()  # the bug is caught and logged inside the tick
    await feed.read_to_eof()  # and the feed is closed
    node.publish(dx="K2ABC")
    node.hub.flush_tick()
    assert node.hub.announced_seq == 2
