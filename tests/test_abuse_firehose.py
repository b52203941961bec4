"""Hostile WebSocket and cluster-port clients against a running `hamsrv serve` (issue 10): clients that
never read, ping floods, huge, unmasked, endlessly fragmented and invalid-UTF-8 frames, 1 MB cluster
lines, DX spam, and 10,000 idle TCP connections. Throughout, /healthz answers, a normal firehose client
gets every spot, and RSS stays under the bound (tests/test_abuse.py's `under_attack`)."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from hamsrv.firehose import ws
from tests.served import Served, start_serve
from tests.test_abuse import under_attack

UPGRADE = (b"GET /ws/firehose HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
MASK = b"\x01\x02\x03\x04"


@pytest.fixture
def hostile_served(tmp_path: Path, db_url: str) -> Iterator[Served]:
    server = start_serve(tmp_path, db_url)
    try:
        yield server
    finally:
        assert server.stop() == 0, server.log.read_text()[-2000:]


async def connect(port: int, source: str = "127.0.0.1", rcvbuf: int | None = None) -> trio.SocketStream:
    sock = trio.socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    await sock.bind((source, 0))
    await sock.connect(("127.0.0.1", port))
    return trio.SocketStream(sock)


def http_port(served: Served) -> int:
    return int(served.url.rsplit(":", 1)[1])


async def test_websocket_abuse(hostile_served: Served) -> None:
    port = http_port(hostile_served)
    kinds = itertools.cycle([
        b"",  # never reads anything
        ws.encode_frame(ws.OP_PING, b"p" * 125, mask=MASK) * 2000,  # ping flood, no reading
        b"\x81\xff" + (1 << 40).to_bytes(8, "big") + MASK,  # a 1 TB frame announced
        ws.encode_frame(ws.OP_TEXT, b"unmasked"),  # client frames must be masked
        ws.encode_frame(ws.OP_TEXT, b"{", fin=False, mask=MASK)
        + ws.encode_frame(ws.OP_CONTINUATION, b"", fin=False, mask=MASK) * 100_000,  # endless fragments
        ws.encode_frame(ws.OP_TEXT, b"\xff\xfe\xfd", mask=MASK),  # not UTF-8
    ])

    async def attacker() -> None:
        payload = next(kinds)
        while True:
            try:
                stream = await connect(port, rcvbuf=4096)
                async with stream:
                    await stream.send_all(UPGRADE)
                    while True:
                        if payload:
                            await stream.send_all(payload)
                        await trio.sleep(0.05 if payload else 1)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await trio.sleep(0.1)  # the server hung up on us, as it should: try again

    await under_attack(hostile_served, None, 30, attacker)


async def test_cluster_port_abuse_and_10000_idle_connections(hostile_served: Served) -> None:
    """127.0.0.1 is a trusted feed here (the spots of under_attack); attackers come from other
    loopback addresses, so the per-address caps apply to them."""
    http, cluster = http_port(hostile_served), hostile_served.cluster_port
    sources = itertools.cycle(f"127.0.0.{n}" for n in range(2, 12))
    idle: list[trio.SocketStream] = []

    async def attacker() -> None:
        source = next(sources)
        while True:
            try:
                stream = await connect(cluster, source)
                async with stream:
                    await stream.send_all(b"G4XYZ\r\n")
                    for n in itertools.count():  # DX spam, then a 1 MB line without an end
                        await stream.send_all(b"DX %d.0 K%dSPAM spam\r\n" % (14000 + n % 300, n % 10))
                        if n % 50 == 49:
                            await stream.send_all(b"X" * (1 << 20))
                        await trio.sleep(0.01)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await trio.sleep(0.1)

    for n in range(10_000):  # half on the HTTP port, half on the cluster port; they send nothing
        idle.append(await connect(http if n % 2 else cluster, next(sources)))
    assert len(idle) == 10_000
    try:
        await under_attack(hostile_served, None, 20, attacker)
    finally:
        for stream in idle:
            await stream.aclose()
