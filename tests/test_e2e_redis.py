"""Two whole hamsrv nodes sharing a real Redis: a spot typed on either reaches every node's WebSocket
and telnet clients exactly once, and the same spot heard on both nodes is kept once."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import trio
from trio_websocket import open_websocket_url

from bench.peers.redis_server import RedisServer
from hamsrv import config as config_mod
from hamsrv.app import Running, run
from tests.test_e2e_firehose import read_until


async def start_node(nursery: trio.Nursery, config: config_mod.Config, tmp_path: Path, name: str,
                     redis_url: str) -> Running:
    data_dir = tmp_path / name
    data_dir.mkdir()
    node_config = replace(config, data_dir=data_dir, redis_url=redis_url, node_id=name, tick_ms=10.0)
    return await nursery.start(lambda task_status: run(node_config, handle_signals=False,  # type: ignore[no-any-return]
                                                       task_status=task_status))


async def telnet_login(port: int, call: bytes) -> tuple[trio.SocketStream, bytearray]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    buf = bytearray()
    await read_until(stream, b"login: ", buf)
    await stream.send_all(call + b"\r\n")
    await read_until(stream, b">", buf)
    return stream, buf


async def test_spot_reaches_every_node_once(app_config: config_mod.Config, tmp_path: Path,
                                            redis: RedisServer, nursery: trio.Nursery) -> None:
    nodes = [await start_node(nursery, app_config, tmp_path, name, redis.url) for name in ("a", "b")]
    await trio.sleep(0.5)  # bridges connected and positioned at the stream's end
    b_telnet, b_buf = await telnet_login(nodes[1].cluster_port, b"ON4XX")
    async with open_websocket_url(f"ws://127.0.0.1:{nodes[1].http_port}/ws/firehose") as ws:
        users = [(await telnet_login(node.cluster_port, b"G4XYZ"))[0] for node in nodes]
        await users[0].send_all(b"DX 14025.0 IP0TRC cq test\r\n")  # typed on node a only
        for user in users:  # the same spot from a user of each node: kept once everywhere
            await user.send_all(b"DX 7010.0 JA1XYZ 599\r\n")
        got: list[dict[str, Any]] = []
        with trio.move_on_after(2):
            while True:
                message = json.loads(await ws.get_message())
                if isinstance(message, list):
                    got += message
        assert sorted((s["dx"], s["freq"]) for s in got) == [("IP0TRC", 14025.0), ("JA1XYZ", 7010.0)]
        line = (await read_until(b_telnet, b"IP0TRC", b_buf)).decode()
        assert "DX de G4XYZ:" in line
        for node in nodes:
            assert sorted(e.spot.dx for e in node.hub.ring.after(0)) == ["IP0TRC", "JA1XYZ"]
    for node in nodes:
        node.shutdown.set()
