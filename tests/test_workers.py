"""`hamsrv serve --workers 2`: real worker processes sharing the public port and a shared-memory ring."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from bench.servers import free_ports
from hamsrv import config as config_mod
from hamsrv.db.database import Database
from hamsrv.firehose.ring import RingEntry, encode_spot
from hamsrv.identity.tokens import add_user, issue_token
from hamsrv.model import Spot
from hamsrv.workers import decode_record, encode_record, supervise
from tests.test_e2e_firehose import read_until


async def spots_until(ws: WebSocketConnection, want: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    with trio.fail_after(15):
        while len(got) < want:
            message = json.loads(await ws.get_message())
            if isinstance(message, list):
                got += message
    return got


async def per_worker(base: str, read: Callable[[dict[str, Any]], int]) -> dict[int, int]:
    """A figure of each worker's /healthz, asking on new connections until every worker has answered."""
    seen: dict[int, int] = {}
    with trio.fail_after(10):
        while len(seen) < 2:
            async with httpx.AsyncClient(base_url=base) as fresh:
                body = await health(fresh)
            seen[body["workers"]["this"]] = read(body)
    return seen


async def firehose_clients(base: str) -> dict[int, int]:
    return await per_worker(base, lambda body: body["firehose"]["clients"])


async def health(client: httpx.AsyncClient) -> dict[str, Any]:
    """/healthz, retried while a killed worker's queued connections are being reset."""
    while True:
        try:
            body: dict[str, Any] = (await client.get("/healthz")).json()
            return body
        except httpx.TransportError:
            await trio.sleep(0.05)


async def two_workers(app_config: config_mod.Config, db_url: str,
                      tmp_path: Any) -> tuple[config_mod.Config, str, int]:
    """The configuration of two workers, W1AW's API token and the free cluster port the config uses."""
    db = await Database.open(db_url, tmp_path)
    token = await issue_token(db, (await add_user(db, "W1AW"))["id"])
    await db.close()
    cluster_port = free_ports(1)[0]
    return replace(app_config, workers=2, cluster=config_mod.Bind("127.0.0.1", cluster_port)), token, cluster_port


async def test_two_workers_share_spots_restart_and_drain(app_config: config_mod.Config, db_url: str,
                                                         tmp_path: Any) -> None:
    config, token, cluster_port = await two_workers(app_config, db_url, tmp_path)
    async with trio.open_nursery() as supervisor:
        port = await supervisor.start(supervise, config)
        pids = await _exercise(port, token, cluster_port)
        os.kill(os.getpid(), signal.SIGTERM)  # the supervisor's signal handler drains the workers
    for pid in pids:  # every worker has exited (no orphans left behind)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def _exercise(port: int, token: str, cluster_port: int) -> list[int]:
    """Spots through two workers, a follower and then the primary killed; returns the last worker pids."""
    base = f"http://127.0.0.1:{port}"
    # No keep-alive: each request picks a worker anew, as after a restart a real client would.
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"},
                                 limits=httpx.Limits(max_keepalive_connections=0)) as client:
        with trio.fail_after(20):  # both workers up (the port answers as soon as one listens)
            while not all(w["up"] for w in (await health(client))["workers"]["all"]):
                await trio.sleep(0.1)
        # 30 clients, spread over both workers by the kernel (SO_REUSEPORT).
        clients = []
        async with trio.open_nursery() as n:
            for _ in range(30):
                clients.append(await n.start(_open_ws, f"ws://127.0.0.1:{port}/ws/firehose"))
            per_worker = await firehose_clients(base)
            assert sum(per_worker.values()) == 30 and min(per_worker.values()) > 0, per_worker
            # Spots from HTTP (landing on either worker) and from the primary's cluster port.
            posted = []
            for i in range(6):
                r = await client.post("/api/spots", json={"dx": f"JA{i}XYZ", "freq": 7010.0 + i})
                assert r.status_code == 201, r.text
                posted.append(r.json()["id"])
            dupe = await client.post("/api/spots", json={"dx": "JA0XYZ", "freq": 7010.0})
            assert dupe.status_code == 409
            telnet = await trio.open_tcp_stream("127.0.0.1", cluster_port)
            buf = bytearray()
            await read_until(telnet, b"login: ", buf)
            await telnet.send_all(b"g4xyz\r\nDX 14025.0 IP0TRC cq\r\n")
            for ws in clients:
                got = await spots_until(ws, 7)
                assert [s["dx"] for s in got][:6] == [f"JA{i}XYZ" for i in range(6)]
                assert got[6]["dx"] == "IP0TRC" and [s["id"] for s in got] == list(range(1, 8))
            await telnet.aclose()

            # A follower killed under load (a feed keeps sending): restarted; a client resuming with
            # since misses nothing of what the feed sent meanwhile.
            status = (await health(client))["workers"]["all"]
            async with trio.open_nursery() as load:
                load.start_soon(_feed, cluster_port, 40)
                await trio.sleep(0.5)
                os.kill(status[1]["pid"], signal.SIGKILL)
                with trio.fail_after(20):
                    while not (s := (await health(client))["workers"]["all"])[1]["up"] or s[1]["restarts"] < 1:
                        await trio.sleep(0.1)
            metrics = (await client.get("/metrics")).text
            assert 'hamsrv_worker_restarts{worker="1"} 1' in metrics and 'hamsrv_worker_up{worker="1"} 1' in metrics
            async with open_websocket_url(f"ws://127.0.0.1:{port}/ws/firehose?since=6") as ws:
                got = await spots_until(ws, 41)
                assert [s["id"] for s in got] == list(range(7, 48))
                assert [s["dx"] for s in got[1:]] == [f"K{i}LOAD" for i in range(40)]

            # The primary killed: restarted with the ring's history; numbering continues.
            os.kill(status[0]["pid"], signal.SIGKILL)
            with trio.fail_after(20):
                while True:
                    s = (await health(client))["workers"]["all"]
                    if s[0]["up"] and s[0]["restarts"] >= 1:
                        with contextlib.suppress(httpx.TransportError):
                            r = await client.post("/api/spots", json={"dx": "ZS6DEF", "freq": 21020.0})
                            if r.status_code == 201:
                                break
                    await trio.sleep(0.2)
            assert r.json()["id"] > 47
            history = (await client.get("/api/spots", params={"since": "0"})).json()["spots"]
            assert [h["dx"] for h in history][:7] == [f"JA{i}XYZ" for i in range(6)] + ["IP0TRC"]
            assert len({h["dx"] for h in history}) == len(history)  # the new primary sent nothing twice
            for ws in clients:
                await ws.aclose()
            n.cancel_scope.cancel()
        return [w["pid"] for w in (await health(client))["workers"]["all"]]


async def _feed(port: int, count: int) -> None:
    """A feed (127.0.0.1 is one in the tests' config) pushing `count` `DX de` lines, ten a second."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    buf = bytearray()
    await read_until(stream, b"login: ", buf)
    await stream.send_all(b"g4xyz\r\n")
    for i in range(count):
        dx = f"K{i}LOAD"
        now = datetime.now(UTC).strftime("%H%M")
        await stream.send_all(f"DX de G4XYZ:    {14000 + 2 * i:8.1f}  {dx:<12} load{i:<26} {now}Z\r\n".encode())
        await trio.sleep(0.1)
    await stream.aclose()


async def _open_ws(url: str, task_status: trio.TaskStatus[WebSocketConnection]) -> None:
    async with open_websocket_url(url) as ws:
        task_status.started(ws)
        await trio.sleep_forever()


def test_record_round_trip() -> None:
    """What the primary writes to the shared ring is what a follower reads back, field for field."""
    spot = Spot("DL1ABC", 14025.0, "K1ABC", "cq test", datetime(2026, 12, 3, 12, 30, 15, tzinfo=UTC),
                band="20m", mode="CW", dxcc=291, country="United States", cont="NA", cqz=5, snr=12,
                skimmer=True, source="feed", origin="DB0SUE", extra={"dx_grid": "FN31"})
    spot.id = 42
    back, encoded = decode_record(encode_record(RingEntry(42, spot, encode_spot(spot), 0.0)))
    assert back == spot and encoded == encode_spot(spot)
