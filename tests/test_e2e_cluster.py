"""The whole app: cluster announcements on the page's firehose, and HAMSRV_CLUSTER_PEERS wiring."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import httpx
import trio
from trio_websocket import open_websocket_url

from hamsrv import config as config_mod
from hamsrv.app import Running, run
from tests.firehose.test_peering import ScriptedPeer, start_peer

SAFETY = 20


async def telnet_user(port: int, call: str) -> tuple[trio.SocketStream, bytearray]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    buffer = bytearray()
    await stream.send_all(call.encode() + b"\r\n")
    with trio.fail_after(SAFETY):
        while b"hamsrv >" not in buffer:
            buffer += await stream.receive_some(4096)
    return stream, buffer


async def test_announcement_reaches_the_page_firehose(running: Any) -> None:
    """A distinct `announce` message on /ws/firehose (web/spots.js shows it above the spots)."""
    async with open_websocket_url(f"ws://127.0.0.1:{running.http_port}/ws/firehose") as ws:
        stream, _ = await telnet_user(running.cluster_port, "G4ABC")
        await stream.send_all(b"announce full hello page\r\ntalk G4ABC private\r\n")
        with trio.fail_after(SAFETY):
            message = json.loads(await ws.get_message())
        assert {k: message[k] for k in ("type", "from", "to", "text")} == {
            "type": "announce", "from": "G4ABC", "to": "ALL", "text": "hello page"}
        with trio.move_on_after(0.5):  # the talk is private: it never reaches the firehose
            extra = await ws.get_message()
            raise AssertionError(f"unexpected firehose message {extra!r}")
        await stream.aclose()


async def test_cluster_peers_setting_dials_out_and_reports_health(app_config: config_mod.Config,
                                                                   nursery: trio.Nursery) -> None:
    peer = ScriptedPeer()
    port = await start_peer(nursery, peer)
    config = replace(app_config, cluster_peers=config_mod.load(
        {}, env={"HAMSRV_CLUSTER_PEERS": f"127.0.0.1:{port}/GB7HAM"}).cluster_peers)
    handle: Running = await nursery.start(lambda task_status: run(config, handle_signals=False,
                                                                  task_status=task_status))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{handle.http_port}") as client:
            with trio.fail_after(SAFETY):
                while True:
                    health = (await client.get("/healthz")).json()
                    if health.get("peers") and health["peers"][0]["state"] == "normal":
                        break
                    await trio.sleep(0.05)
        assert peer.sessions[0].login == "GB7HAM" and "PC20^" in peer.sessions[0].received
        assert health["peers"][0]["peer_call"] == "GB7TST-2"
    finally:
        handle.shutdown.set()
