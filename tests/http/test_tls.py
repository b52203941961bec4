"""HTTPS on the public port: the API through hypercorn and the firehose through the fast path's TLS
fallback, both behind the same TLS listener."""

from __future__ import annotations

import datetime as dt

import httpx
import trio
from trio_websocket import open_websocket_url

from hamsrv.db.database import Database
from hamsrv.firehose.fanout import Firehose
from hamsrv.firehose.hub import Hub
from hamsrv.http.api import create_app
from hamsrv.http.common import AppState
from hamsrv.http.listener import serve_public
from hamsrv.ingest.jobs import JobRunner
from hamsrv.metrics import Registry
from hamsrv.model import Spot
from tests.tls import tls_contexts


async def test_https_api_and_wss_firehose(db: Database, nursery: trio.Nursery) -> None:
    server_ctx, client_ctx = tls_contexts()
    metrics = Registry()
    hub = Hub(metrics=metrics, tick=0.01)
    await nursery.start(hub.run)
    state = AppState(db=db, hub=hub, metrics=metrics, imports=JobRunner(db))
    port = await nursery.start(lambda task_status: serve_public(
        create_app(state), Firehose(hub, metrics=metrics), "127.0.0.1", 0, ssl_context=server_ctx,
        task_status=task_status))

    async with httpx.AsyncClient(verify=client_ctx) as client:
        r = await client.get(f"https://localhost:{port}/healthz")
    assert r.status_code == 200 and r.json()["database"] == "ok"

    async with open_websocket_url(f"wss://localhost:{port}/ws/firehose", ssl_context=client_ctx) as ws:
        await trio.sleep(0.05)
        hub.publish(Spot(spotter="G4XYZ", freq=14025.0, dx="IP0TRC", comment="tls",
                         time=dt.datetime.now(dt.UTC), band="20m"))
        with trio.fail_after(10):
            message = await ws.get_message()
        assert '"dx":"IP0TRC"' in message and '"comment":"tls"' in message

    with trio.socket.socket() as plain:  # plain HTTP on the TLS port gets nothing useful, and no crash
        await plain.connect(("127.0.0.1", port))
        await plain.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        with trio.move_on_after(5):
            data = await plain.recv(4096)
            assert b"200 OK" not in data
