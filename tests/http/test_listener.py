"""The public listener hands connections to hypercorn with the bytes it already read."""

from __future__ import annotations

import trio

from hamsrv.http.listener import is_firehose_upgrade
from tests.api import Api


async def test_healthz_reports_database_and_uptime(api: Api) -> None:
    async with api.client() as client:
        r = await client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["uptime"] >= 0


async def test_healthz_is_503_while_the_database_is_down(api: Api) -> None:
    await api.state.db.pool.close()  # every query now fails like an unreachable server
    async with api.client() as client:
        r = await client.get("/healthz")
    assert r.status_code == 503
    assert r.json()["database"] == "down"


async def test_metrics_are_prometheus_text(api: Api) -> None:
    api.state.hub.spots_in.inc(3)
    async with api.client() as client:
        r = await client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    assert "# TYPE hamsrv_spots_in_total counter" in r.text
    assert "\nhamsrv_spots_in_total 3\n" in r.text


async def test_keep_alive_and_pipelined_requests_after_handover(api: Api) -> None:
    """Two requests in the very first packet: the second must not be lost in the hand-over."""
    host, port = api.url.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    await stream.send_all(request * 2)
    data = b""
    with trio.fail_after(5):
        while data.count(b"HTTP/1.1 200") < 2:
            data += await stream.receive_some(65536)
    await stream.aclose()


async def test_page_is_served(api: Api) -> None:
    async with api.client() as client:
        page = await client.get("/")
        script = await client.get("/web/spots.js")
    assert page.status_code == 200 and "<title>hamsrv" in page.text
    assert script.status_code == 200 and "/ws/firehose" in script.text


async def test_unknown_path_is_a_json_404(api: Api) -> None:
    async with api.client() as client:
        r = await client.get("/nope")
    assert r.status_code == 404 and "error" in r.json()


def test_firehose_upgrade_detection() -> None:
    head = b"GET /ws/firehose?band=20m HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    assert is_firehose_upgrade(head)
    assert not is_firehose_upgrade(head.replace(b"/ws/firehose", b"/ws/other"))
    assert not is_firehose_upgrade(b"GET /ws/firehose HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not is_firehose_upgrade(b"\x16\x03\x01garbage")
