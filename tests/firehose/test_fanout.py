"""The firehose fast path end to end: a real trio listener on port 0 hands upgrades to Firehose.handle,
clients are trio-websocket connections or raw sockets speaking RFC 6455 through our own frame reader."""

from __future__ import annotations

import datetime as dt
import functools
import json
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import msgpack
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, WebSocketConnection, open_websocket_url

from hamsrv.errors import InputError
from hamsrv.firehose import ws
from hamsrv.firehose.fanout import Firehose
from hamsrv.firehose.filters import SpotFilter, parse_filter, parse_query
from hamsrv.firehose.hub import Hub
from hamsrv.firehose.ring import RingEntry, SpotRing
from hamsrv.metrics import Registry
from hamsrv.model import Spot
from tests.tls import tls_contexts

FREQ = {"20m": 14025.0, "40m": 7010.0, "15m": 21030.0, "2m": 144300.0}


def make_spot(n: int, band: str = "20m", mode: str = "CW", cont: str = "EU", dxcc: int = 291,
              spotter_cont: str = "NA", comment: str = "") -> Spot:
    return Spot(spotter=f"K{n % 10}ABC", freq=FREQ[band], dx=f"DL{n % 97}XYZ", comment=comment or f"spot {n}",
                time=dt.datetime(2026, 11, 26, 12, n % 60, tzinfo=dt.UTC), band=band, mode=mode, cont=cont,
                dxcc=dxcc, spotter_cont=spotter_cont)


@dataclass
class Server:
    hub: Hub
    firehose: Firehose
    port: int
    scheme: str = "ws"

    def url(self, query: str = "") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/ws/firehose" + (f"?{query}" if query else "")

    def publish(self, count: int, **kinds: object) -> list[RingEntry]:
        """Publish `count` spots and run one tick (what Hub.run does every 50 ms)."""
        entries = [self.hub.publish(make_spot(self.hub.ring.last_seq + 1 + i, **kinds)) for i in range(count)]  # type: ignore[arg-type]
        self.hub.flush_tick()
        return [e for e in entries if e is not None]


async def read_head(stream: trio.abc.Stream) -> bytes | None:
    head = b""
    while b"\r\n\r\n" not in head:
        data = await stream.receive_some(65536)
        if not data:
            return None
        head += data
    return head


StartServer = Callable[..., Awaitable[Server]]


@pytest.fixture
async def start_server(nursery: trio.Nursery) -> StartServer:
    """Start a Hub + Firehose behind a tiny stand-in for the public listener (plain or TLS)."""

    async def start(ring: SpotRing | None = None, tls: ssl.SSLContext | None = None, **options: object) -> Server:
        hub = Hub(ring)
        firehose = Firehose(hub, metrics=Registry(), **options)  # type: ignore[arg-type]

        async def handler(stream: trio.SocketStream) -> None:
            peer_ip = stream.socket.getpeername()[0]
            conn: trio.abc.Stream = stream
            if tls is not None:
                conn = trio.SSLStream(stream, tls, server_side=True)
                await conn.do_handshake()
            head = await read_head(conn)
            if head is not None:
                await firehose.handle(conn, head, peer_ip)

        listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        return Server(hub, firehose, port, "wss" if tls else "ws")

    return start


class RawClient:
    """A hand-rolled WebSocket client on a plain socket, so tests control every byte and buffer size."""

    def __init__(self, stream: trio.SocketStream, status: int, response: bytes, rest: bytes):
        self.stream, self.status, self.response = stream, status, response
        self.reader = ws.FrameReader(expect_masked=False, max_message_size=1 << 24,
                                     deflate=b"permessage-deflate" in response.lower())
        self.reader.receive_data(rest)

    @classmethod
    async def connect(cls, port: int, query: str = "", rcvbuf: int | None = None,
                      headers: bytes = b"") -> RawClient:
        sock = trio.socket.socket()
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        await sock.connect(("127.0.0.1", port))
        stream = trio.SocketStream(sock)
        target = "/ws/firehose" + (f"?{query}" if query else "")
        await stream.send_all(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n".encode() + headers + b"\r\n")
        head = await read_head(stream)
        assert head is not None
        response, _, rest = head.partition(b"\r\n\r\n")
        return cls(stream, int(response.split()[1]), response, rest)

    async def event(self) -> ws.Event | None:
        """Next event, or None at EOF."""
        while (event := self.reader.next_event()) is None:
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self.reader.receive_data(data)
        return event

    async def send(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        await self.stream.send_all(ws.encode_frame(opcode, payload, fin=fin, mask=b"\x01\x02\x03\x04"))

    async def spot_ids(self, until: int) -> list[int]:
        ids: list[int] = []
        while not ids or ids[-1] < until:
            event = await self.event()
            assert isinstance(event, ws.TextMessage), event
            ids += [spot["id"] for spot in json.loads(event.text)]
        return ids

    async def close_code(self) -> int:
        """Read until the server's close frame (skipping anything else); its code."""
        while True:
            event = await self.event()
            assert event is not None, "connection ended without a close frame"
            if isinstance(event, ws.Close):
                return event.code


async def receive(conn: WebSocketConnection) -> list[dict] | dict:
    message = await conn.get_message()
    return json.loads(message) if isinstance(message, str) else msgpack.unpackb(message)


async def spots_until(conn: WebSocketConnection, last_id: int) -> list[dict]:
    """Spot objects received until the one with `last_id` (control messages are not expected)."""
    spots: list[dict] = []
    while not spots or spots[-1]["id"] < last_id:
        message = await receive(conn)
        assert isinstance(message, list), message
        spots += message
    return spots


# ---------------------------------------------------------------- pure parts

def test_query_and_filter_parsing() -> None:
    spot_filter, since = parse_query("band=20M,40m&band=2m&mode=cw&cont=eu&dxcc=291&spotter_cont=NA&since=17")
    assert since == 17
    assert spot_filter == SpotFilter(band=frozenset({"20m", "40m", "2m"}), mode=frozenset({"CW"}),
                                     cont=frozenset({"EU"}), dxcc=frozenset({291}),
                                     spotter_cont=frozenset({"NA"}))
    assert parse_query("band=&since=0") == (SpotFilter(), 0)
    assert parse_filter({"band": ["20m"], "dxcc": [291, "230"]}).to_dict() == {"band": ["20m"], "dxcc": [230, 291]}
    bad_fields: list[tuple[dict[str, object], str]] = [
        ({"band": "21m"}, "band"), ({"cont": "XX"}, "cont"), ({"dxcc": "-1"}, "dxcc"), ({"mode": "C W"}, "mode"),
        ({"colour": "red"}, "colour"), ({"band": [True]}, "band"), ({"spotter_cont": ["EU", 5]}, "spotter_cont"),
        ({"dxcc": "9" * 5000}, "dxcc"), ({"dxcc": ["١٢"]}, "dxcc")]  # no int() of 5,000 digits, ASCII only
    for bad, field in bad_fields:
        with pytest.raises(InputError) as info:
            parse_filter(bad)
        assert info.value.field == field


# ---------------------------------------------------------------- many clients

async def test_thousand_clients_receive_the_same_spots(start_server: StartServer) -> None:
    server = await start_server(per_ip_limit=2000)
    clients = [await RawClient.connect(server.port) for _ in range(1000)]
    assert all(c.status == 101 for c in clients)
    stats = server.firehose.statistics()
    assert (stats.clients, stats.groups) == (1000, 1)
    entries = server.publish(5) + server.publish(7) + server.publish(3)
    expected = [e.seq for e in entries]
    received: dict[int, list[int]] = {}

    async def read(i: int, client: RawClient) -> None:
        received[i] = await client.spot_ids(expected[-1])

    async with trio.open_nursery() as nursery:
        for i, client in enumerate(clients):
            nursery.start_soon(read, i, client)
    assert len(received) == 1000
    assert all(ids == expected for ids in received.values())
    for client in clients:
        await client.stream.aclose()


# ---------------------------------------------------------------- filters

async def test_query_filters_and_shared_groups(start_server: StartServer) -> None:
    server = await start_server()
    async with open_websocket_url(server.url("band=20m&mode=CW")) as cw20, \
            open_websocket_url(server.url("mode=cw&band=20M")) as cw20_again, \
            open_websocket_url(server.url("cont=OC,SA&spotter_cont=EU")) as dx, \
            open_websocket_url(server.url("dxcc=230")) as germany, \
            open_websocket_url(server.url()) as everything:
        assert server.firehose.statistics().groups == 4  # the two 20m CW clients share one group
        server.publish(2, band="20m", mode="CW")
        server.publish(2, band="40m", mode="CW")
        server.publish(2, band="20m", mode="FT8")
        server.publish(1, cont="OC", spotter_cont="EU")
        server.publish(1, cont="SA", spotter_cont="EU")
        server.publish(1, cont="OC", spotter_cont="NA")
        server.publish(2, band="15m", mode="SSB", dxcc=230)
        last = server.publish(1, band="20m", mode="CW", cont="OC", spotter_cont="EU", dxcc=230)[0].seq
        published = [e.spot for e in server.hub.ring.after(0)]

        def ids_where(wanted: Callable[[Spot], bool]) -> list[int]:
            return [spot.id for spot in published if wanted(spot)]

        for conn in (cw20, cw20_again):
            assert [s["id"] for s in await spots_until(conn, last)] == ids_where(
                lambda s: s.band == "20m" and s.mode == "CW")
        assert [s["id"] for s in await spots_until(dx, last)] == ids_where(
            lambda s: s.cont in ("OC", "SA") and s.spotter_cont == "EU")
        assert [s["id"] for s in await spots_until(germany, last)] == ids_where(lambda s: s.dxcc == 230)
        all_spots = await spots_until(everything, last)
        assert [s["id"] for s in all_spots] == list(range(1, last + 1))
        assert all_spots[0] == json.loads(server.hub.ring.after(0, 1)[0].json)


async def test_cw_filter_sees_no_frame_without_matching_spots(start_server: StartServer) -> None:
    server = await start_server()
    client = await RawClient.connect(server.port, "mode=CW")
    server.publish(3, mode="FT8")
    server.publish(3, mode="FT8")
    cw = server.publish(1, mode="CW")
    event = await client.event()  # the first frame is the CW one: no empty frames for the FT8 ticks
    assert isinstance(event, ws.TextMessage)
    assert [s["id"] for s in json.loads(event.text)] == [cw[0].seq]
    await client.stream.aclose()


async def test_subscribe_message_replaces_filter_and_errors_keep_the_connection(start_server: StartServer) -> None:
    server = await start_server()
    async with open_websocket_url(server.url("band=40m")) as conn:
        await conn.send_message(json.dumps({"subscribe": {"band": ["20m", "15m"], "mode": "CW"}}))
        assert await receive(conn) == {"type": "subscribed", "filter": {"band": ["15m", "20m"], "mode": ["CW"]}}
        assert server.firehose.statistics().groups == 1  # the old 40m group is gone
        await conn.send_message('{"subscribe": {"band": ["21m"]}}')
        error = await receive(conn)
        assert isinstance(error, dict)
        assert error["type"] == "error" and error["field"] == "band" and "21m" in error["error"]
        for bad in ("not json", "[1]", '{"subscribe": 5}', "[" * 60000):
            await conn.send_message(bad)
            error = await receive(conn)
            assert isinstance(error, dict) and error["type"] == "error" and "field" not in error
        await conn.send_message(b"\x00")
        error = await receive(conn)
        assert isinstance(error, dict) and "binary" in error["error"]
        server.publish(1, band="40m")
        wanted = server.publish(2, band="15m")
        assert [s["id"] for s in await spots_until(conn, wanted[-1].seq)] == [e.seq for e in wanted]
        await conn.send_message('{"subscribe": {}}')
        assert await receive(conn) == {"type": "subscribed", "filter": {}}
        wanted = server.publish(1, band="2m", mode="FM")
        assert [s["id"] for s in await spots_until(conn, wanted[-1].seq)] == [wanted[0].seq]


async def test_bad_query_is_refused_with_400_naming_the_field(start_server: StartServer) -> None:
    server = await start_server()
    for query, word in [("band=21m", b"band"), ("since=yesterday", b"since"), ("colour=red", b"colour"),
                        ("since=" + "9" * 5000, b"since")]:
        with pytest.raises(ConnectionRejected) as info:
            async with open_websocket_url(server.url(query)):
                pass
        assert info.value.status_code == 400
        assert info.value.body is not None and word in info.value.body


# ---------------------------------------------------------------- history

async def test_since_replays_in_bounded_frames_then_continues_live(start_server: StartServer) -> None:
    server = await start_server()
    server.publish(1200)
    client = await RawClient.connect(server.port, "since=100")
    live = server.publish(30)  # published before the client's replay has run: no gap, no duplicate
    frames: list[list[int]] = []
    while not frames or frames[-1][-1] < live[-1].seq:
        event = await client.event()
        assert isinstance(event, ws.TextMessage)
        frames.append([s["id"] for s in json.loads(event.text)])
    more = server.publish(5)
    frames.append(await client.spot_ids(more[-1].seq))
    ids = [i for frame in frames for i in frame]
    assert ids == list(range(101, more[-1].seq + 1))
    assert max(len(f) for f in frames) <= 500 and len(frames) >= 4
    await client.stream.aclose()


async def test_since_with_a_filter_and_msgpack(start_server: StartServer) -> None:
    server = await start_server()
    server.publish(5, band="40m")
    wanted = server.publish(3, band="20m")
    server.publish(5, band="40m")
    async with open_websocket_url(server.url("since=0&band=20m"), subprotocols=["hamsrv.msgpack"]) as conn:
        assert conn.subprotocol == "hamsrv.msgpack"
        message = await conn.get_message()
        assert isinstance(message, bytes)
        assert msgpack.unpackb(message) == [json.loads(e.json) for e in wanted]
        live = server.publish(20, band="20m")
        assert [s["id"] for s in await spots_until(conn, live[-1].seq)] == [e.seq for e in live]


async def test_gap_message_when_since_is_older_than_the_ring(start_server: StartServer) -> None:
    server = await start_server(ring=SpotRing(max_count=100))
    server.publish(300)
    async with open_websocket_url(server.url("since=10")) as conn:
        assert await receive(conn) == {"type": "gap", "from": 11, "to": 200}
        spots = await spots_until(conn, 300)
        assert [s["id"] for s in spots] == list(range(201, 301))
    assert server.firehose.statistics().gaps == 1


# ---------------------------------------------------------------- slow clients

async def test_a_client_that_pauses_catches_up_from_the_ring_without_loss(start_server: StartServer) -> None:
    server = await start_server(max_pending=16 * 1024)
    client = await RawClient.connect(server.port, rcvbuf=4096)
    last = 0
    for _ in range(400):  # ~40 kB per tick: the queue bound is passed quickly while nobody reads
        last = server.publish(100, comment="x" * 300)[-1].seq
        if server.firehose.fell_behind.value:
            break
    assert server.firehose.fell_behind.value >= 1
    assert server.firehose.statistics().behind == 1
    last = server.publish(50)[-1].seq  # published while behind: comes from the ring
    ids = await client.spot_ids(last)
    assert ids == list(range(1, last + 1))
    assert server.firehose.statistics().behind == 0  # back in the live group
    more = server.publish(3)
    assert await client.spot_ids(more[-1].seq) == [e.seq for e in more]
    await client.stream.aclose()


async def test_a_client_that_falls_out_of_the_ring_gets_a_gap(start_server: StartServer) -> None:
    server = await start_server(ring=SpotRing(max_count=200), max_pending=8 * 1024)
    client = await RawClient.connect(server.port, rcvbuf=4096)
    while not server.firehose.fell_behind.value:
        server.publish(50, comment="y" * 300)
    last = server.publish(600)[-1].seq  # the ring now holds only the last 200
    spot_ids: list[int] = []
    gap: dict | None = None
    while not spot_ids or spot_ids[-1] < last:
        event = await client.event()
        assert isinstance(event, ws.TextMessage)
        message = json.loads(event.text)
        if isinstance(message, dict):
            assert gap is None and message["type"] == "gap"
            gap = message
        else:
            spot_ids += [s["id"] for s in message]
    assert gap is not None and spot_ids[0] == 1 < gap["from"]  # the gap is in mid-stream
    assert spot_ids == sorted(set(spot_ids))  # in order, no duplicate
    missing = set(range(gap["from"], gap["to"] + 1))
    assert missing.isdisjoint(spot_ids)  # every spot is either delivered once or reported missing
    assert missing | set(spot_ids) == set(range(1, last + 1))
    assert spot_ids[-200:] == list(range(last - 199, last + 1))
    await client.stream.aclose()


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_hundred_stalled_clients_cost_no_memory_and_a_normal_client_gets_everything(
        start_server: StartServer) -> None:
    server = await start_server(ring=SpotRing(max_count=2000), per_ip_limit=500)
    stalled = [await RawClient.connect(server.port, rcvbuf=4096) for _ in range(100)]
    async with open_websocket_url(server.url(), max_message_size=1 << 22) as normal:
        received: list[int] = []

        async def tick() -> None:
            entries = server.publish(200, comment="z" * 250)  # ~100 kB per tick
            received.extend(s["id"] for s in await spots_until(normal, entries[-1].seq))

        for _ in range(20):  # warm up: ring full, allocator settled
            await tick()
        before = rss_bytes()
        rounds = 0
        while server.firehose.statistics().behind < 100 or rounds < 150:  # then >15 MB more per client
            await tick()
            rounds += 1
            assert rounds < 2000, "stalled clients never filled their buffers"
        grown = rss_bytes() - before
        assert grown < 8 * 1024 * 1024, f"RSS grew by {grown / 1e6:.1f} MB"
        assert received == list(range(1, server.hub.ring.last_seq + 1))
        assert server.firehose.statistics().behind == 100
    for client in stalled:
        await client.stream.aclose()


# ---------------------------------------------------------------- control frames and closing

async def test_ping_is_answered_and_server_pings_keep_a_live_client(start_server: StartServer) -> None:
    server = await start_server(ping_interval=0.05, pong_timeout=30)
    client = await RawClient.connect(server.port)
    await client.send(ws.OP_PING, b"are you there")
    seen: set[ws.Event] = set()
    while not {ws.Pong(b"are you there"), ws.Ping(b"")} <= seen:  # our answer and the server's keepalive
        event = await client.event()
        assert event is not None
        seen.add(event)
    await client.send(ws.OP_PONG, b"")
    entries = server.publish(2)
    ids: list[int] = []
    while len(ids) < 2:
        event = await client.event()
        if isinstance(event, ws.TextMessage):
            ids += [s["id"] for s in json.loads(event.text)]
    assert ids == [e.seq for e in entries]
    await client.stream.aclose()


async def test_silent_client_is_closed_by_the_keepalive(start_server: StartServer) -> None:
    server = await start_server(ping_interval=0.02, pong_timeout=0.1, close_timeout=0.2)
    client = await RawClient.connect(server.port)
    assert await client.close_code() == 1008
    assert await client.event() is None  # then the server hangs up
    assert server.firehose.statistics().timeouts == 1


async def test_chatter_is_not_a_sign_of_life(start_server: StartServer) -> None:
    """Issue 10: any received bytes counted as liveness. A client that keeps sending but never answers
    the server's pings is closed by the keepalive all the same."""
    server = await start_server(ping_interval=0.02, pong_timeout=0.2, close_timeout=0.2)
    client = await RawClient.connect(server.port)
    with trio.fail_after(10):
        while server.firehose.statistics().timeouts == 0:
            await client.send(ws.OP_TEXT, b'{"subscribe": {"band": ["20m"]}}')
            await trio.sleep(0.01)
    assert await client.close_code() == 1008
    assert server.firehose.statistics().timeouts == 1


async def test_ping_flood_without_reading_is_closed(start_server: StartServer) -> None:
    """Issue 10: replies to a client that never reads were queued without limit."""
    server = await start_server(max_pending=64 * 1024, close_timeout=0.2)
    client = await RawClient.connect(server.port, rcvbuf=4096)
    flood = ws.encode_frame(ws.OP_PING, b"x" * 125, mask=b"\x01\x02\x03\x04") * 1000
    with trio.fail_after(30):
        while server.firehose.statistics().timeouts == 0:
            await client.stream.send_all(flood)
            await trio.sleep(0)
    with trio.fail_after(10):  # and the server hangs up (our unread pongs are dropped with us)
        while server.firehose.statistics().clients:
            await trio.sleep(0.05)
    await client.stream.aclose()


async def test_since_does_not_force_an_early_tick(start_server: StartServer) -> None:
    """Issue 10: any `since=` connection flushed the tick, so clients could defeat the batching. Spots
    not yet announced come with the next tick, once, after the replay."""
    server = await start_server()
    server.publish(3)
    pending = server.hub.publish(make_spot(4))
    assert pending is not None and server.hub.announced_seq == 3
    client = await RawClient.connect(server.port, "since=1")
    assert await client.spot_ids(3) == [2, 3]
    assert server.hub.announced_seq == 3  # the connection did not announce spot 4
    server.hub.flush_tick()
    assert await client.spot_ids(4) == [4]
    await client.stream.aclose()


async def test_client_close_is_echoed(start_server: StartServer) -> None:
    server = await start_server()
    async with open_websocket_url(server.url()) as conn:
        await conn.aclose(1000, "bye")
        assert conn.closed is not None and conn.closed.code == 1000
    client = await RawClient.connect(server.port)
    await client.send(ws.OP_CLOSE, ws.close_payload(4001, "custom"))
    assert await client.event() == ws.Close(4001, "")
    assert await client.event() is None  # the server half-closed after its close frame
    await client.stream.aclose()
    with trio.fail_after(5):
        while server.firehose.statistics().clients:
            await trio.sleep(0.01)


@pytest.mark.parametrize(("frame", "code"), [
    (ws.encode_frame(ws.OP_TEXT, b"unmasked"), 1002),
    (ws.encode_frame(ws.OP_TEXT, b"x" * 70_000, mask=b"abcd"), 1009),
    (ws.encode_frame(ws.OP_TEXT, b"\xc3\x28", mask=b"abcd"), 1007),
], ids=["unmasked", "too-big", "bad-utf8"])
async def test_protocol_violations_close_with_the_right_code(start_server: StartServer, frame: bytes,
                                                             code: int) -> None:
    server = await start_server()
    client = await RawClient.connect(server.port)
    await client.stream.send_all(frame)
    assert await client.close_code() == code
    assert await client.event() is None


async def test_close_all_sends_going_away_and_refuses_newcomers(start_server: StartServer) -> None:
    server = await start_server(close_timeout=0.3)
    raw = await RawClient.connect(server.port)
    async with open_websocket_url(server.url()) as conn, trio.open_nursery() as nursery:
        nursery.start_soon(server.firehose.close_all)
        with pytest.raises(ConnectionClosed) as info:
            await conn.get_message()
        assert info.value.reason is not None and info.value.reason.code == 1001
        assert await raw.close_code() == 1001  # raw never answers: the server hangs up anyway
    assert server.firehose.statistics().clients == 0
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(server.url()):
            pass
    assert rejected.value.status_code == 503


async def test_per_ip_limit_and_origin_allowlist(start_server: StartServer) -> None:
    server = await start_server(per_ip_limit=2, allowed_origins=["https://Hamsrv.example"])
    first = await RawClient.connect(server.port, headers=b"Origin: https://hamsrv.example\r\n")
    second = await RawClient.connect(server.port)
    third = await RawClient.connect(server.port)
    assert (first.status, second.status, third.status) == (101, 101, 429)
    await first.stream.aclose()
    with trio.fail_after(5):
        while server.firehose.statistics().clients > 1:
            await trio.sleep(0.01)
    assert (await RawClient.connect(server.port)).status == 101
    await second.stream.aclose()
    with trio.fail_after(5):
        while server.firehose.statistics().clients > 1:
            await trio.sleep(0.01)
    foreign = await RawClient.connect(server.port, headers=b"Origin: https://evil.example\r\n")
    assert foreign.status == 403


async def test_plain_http_get_is_told_to_upgrade(start_server: StartServer) -> None:
    server = await start_server()
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    await stream.send_all(b"GET /ws/firehose HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await read_head(stream)
    assert head is not None and head.startswith(b"HTTP/1.1 400 ")
    await stream.aclose()


# ---------------------------------------------------------------- TLS



async def test_tls_clients_get_the_same_frames(start_server: StartServer) -> None:
    server_context, client_context = tls_contexts()
    server = await start_server(tls=server_context, max_pending=64 * 1024)
    async with open_websocket_url(server.url("band=20m"), client_context) as a, \
            open_websocket_url(server.url(), client_context, subprotocols=["hamsrv.msgpack"]) as b:
        entries = server.publish(40, band="20m") + server.publish(10, band="40m")
        assert [s["id"] for s in await spots_until(a, entries[39].seq)] == [e.seq for e in entries[:40]]
        assert [s["id"] for s in await spots_until(b, entries[-1].seq)] == [e.seq for e in entries]
        await a.send_message('{"subscribe": {"band": "40m"}}')
        assert await receive(a) == {"type": "subscribed", "filter": {"band": ["40m"]}}
        more = server.publish(1, band="40m")
        assert await spots_until(a, more[0].seq) == [json.loads(more[0].json)]


# ---------------------------------------------------------------- permessage-deflate

DEFLATE_OFFER = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"  # as Chromium sends


async def test_deflate_is_compressed_once_per_group_and_tick_whatever_the_clients(start_server: StartServer) -> None:
    server = await start_server(per_ip_limit=2000)
    squeezed = [await RawClient.connect(server.port, headers=DEFLATE_OFFER) for _ in range(300)]
    plain = [await RawClient.connect(server.port) for _ in range(20)]
    assert all(b"permessage-deflate" in c.response.lower() for c in squeezed)
    assert not any(b"extensions" in c.response.lower() for c in plain)
    assert server.firehose.statistics().groups == 2  # same filter, one group per encoding
    entries = server.publish(5) + server.publish(7) + server.publish(3)
    assert server.firehose.compressions.value == 3  # three ticks, one compressed frame each
    plain_json = await collect_json(plain[0], entries[-1].seq)
    for client in squeezed[:50] + plain[1:]:
        assert await collect_json(client, entries[-1].seq) == plain_json
    assert [s["id"] for s in plain_json] == [e.seq for e in entries]


async def collect_json(client: RawClient, last_id: int) -> list[dict]:
    spots: list[dict] = []
    while not spots or spots[-1]["id"] < last_id:
        event = await client.event()
        assert isinstance(event, ws.TextMessage), event
        spots += json.loads(event.text)
    return spots


async def test_wsproto_client_with_deflate_gets_compressed_frames_and_may_send_compressed(
        start_server: StartServer) -> None:
    """An independent implementation (wsproto's permessage-deflate) receives the shared compressed frames,
    sees RSV1 on the wire, and its own compressed subscribe message is understood."""
    from wsproto import WSConnection
    from wsproto.connection import ConnectionType
    from wsproto.events import AcceptConnection, Request, TextMessage
    from wsproto.extensions import PerMessageDeflate

    server = await start_server()
    conn = WSConnection(ConnectionType.CLIENT)
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    await stream.send_all(conn.send(Request(host="127.0.0.1", target="/ws/firehose",
                                            extensions=[PerMessageDeflate(client_max_window_bits=15)])))
    wire = bytearray()

    async def next_event() -> object:
        while True:
            for event in conn.events():
                return event
            data = await stream.receive_some(65536)
            assert data, "connection closed"
            wire.extend(data)
            conn.receive_data(data)

    accepted = await next_event()
    assert isinstance(accepted, AcceptConnection) and accepted.extensions
    await stream.send_all(conn.send(TextMessage(data=json.dumps({"subscribe": {"band": ["40m"]}}))))
    subscribed = await next_event()
    assert isinstance(subscribed, TextMessage) and json.loads(subscribed.data)["type"] == "subscribed"
    wire.clear()
    entries = server.publish(3, band="40m")
    message = await next_event()
    assert isinstance(message, TextMessage)
    assert [s["id"] for s in json.loads(message.data)] == [e.seq for e in entries]
    assert wire[0] & 0x40  # RSV1: the frame was compressed
    await stream.aclose()


def test_client_state_table() -> None:
    """Every state can end (reach DEAD), DEAD is final, and only LIVE and BEHIND get spots back."""
    from hamsrv.firehose.fanout import _MOVES, _OPEN, State

    assert set(_MOVES) == set(State) and _MOVES[State.DEAD] == frozenset()
    assert all(State.DEAD in moves for state, moves in _MOVES.items() if state is not State.DEAD)
    assert State.LIVE in _MOVES[State.BEHIND] and State.BEHIND in _MOVES[State.LIVE]
    assert not any(_MOVES[s] & _OPEN for s in set(State) - _OPEN)  # a closing client never reopens


async def test_an_illegal_state_move_is_refused(start_server: StartServer) -> None:
    server = await start_server()
    client = await RawClient.connect(server.port)
    [c] = server.firehose._clients
    assert c.state.name == "LIVE"
    with pytest.raises(RuntimeError, match="cannot go from LIVE to LIVE"):
        server.firehose._move(c, c.state)
    await client.stream.aclose()
