"""The whole app: spots entering by telnet, HTTP and QSO inserts reach WebSocket and telnet clients alike."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import trio
from trio_websocket import open_websocket_url

from hamsrv.identity.tokens import add_user, issue_token


async def read_until(stream: trio.SocketStream, marker: bytes, buf: bytearray) -> bytes:
    with trio.fail_after(10):
        while marker not in buf:
            data = await stream.receive_some(65536)
            assert data, f"connection closed before {marker!r}; got {bytes(buf)!r}"
            buf += data
    end = buf.index(marker) + len(marker)
    out = bytes(buf[:end])
    del buf[:end]
    return out


async def raw_ws_client(port: int, path: str) -> trio.SocketStream:
    """A minimal WebSocket client on a plain socket, so a thousand of them stay cheap."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    return stream


def frames(data: bytes) -> tuple[list[bytes], bytes]:
    """Split unmasked server frames; returns the complete payloads and the unconsumed rest."""
    out = []
    while len(data) >= 2:
        n, head = data[1] & 0x7F, 2
        if n == 126:
            if len(data) < 4:
                break
            n, head = int.from_bytes(data[2:4], "big"), 4
        elif n == 127:
            if len(data) < 10:
                break
            n, head = int.from_bytes(data[2:10], "big"), 10
        if len(data) < head + n:
            break
        out.append(data[head:head + n])
        data = data[head + n:]
    return out, data


async def test_telnet_spot_reaches_1000_websockets_and_telnet(running: Any) -> None:
    port = running.http_port
    clients = []
    for _ in range(1000):
        clients.append(await raw_ws_client(port, "/ws/firehose"))
    for c in clients:
        head = await read_until(c, b"\r\n\r\n", bytearray())
        assert head.startswith(b"HTTP/1.1 101 "), head

    telnet = await trio.open_tcp_stream("127.0.0.1", running.cluster_port)
    buf = bytearray()
    await read_until(telnet, b"login: ", buf)
    await telnet.send_all(b"g4xyz\r\n")
    await read_until(telnet, b">", buf)
    await telnet.send_all(b"DX 14025.0 IP0TRC cq test\r\n")
    line = (await read_until(telnet, b"\r\n", buf)).decode()
    while "DX de" not in line:
        line = (await read_until(telnet, b"\r\n", buf)).decode()
    assert line.startswith("DX de G4XYZ:") and "14025.0" in line and "IP0TRC" in line

    received = []
    for c in clients:
        data = b""
        with trio.fail_after(10):
            while True:
                payloads, rest = frames(data)
                if payloads:
                    break
                data += await c.receive_some(65536)
        received.append(json.loads(payloads[0]))
    first = received[0]
    assert all(r == first for r in received)
    (spot,) = first
    assert (spot["spotter"], spot["freq"], spot["dx"], spot["comment"]) == ("G4XYZ", 14025.0, "IP0TRC", "cq test")
    assert spot["band"] == "20m" and spot["cont"] == "EU" and spot["spotter_cont"] == "EU"
    assert spot["mode"] == "CW"  # 14.025 MHz sits in the CW segment
    for c in clients:
        await c.aclose()
    await telnet.aclose()


async def test_http_spot_and_since_resume(running: Any) -> None:
    user = await add_user(running.db, "W1AW")
    token = await issue_token(running.db, user["id"])
    url = f"http://127.0.0.1:{running.http_port}"
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        ids = []
        for i, call in enumerate(["JA1XYZ", "VK2ABC", "ZS6DEF"]):
            r = await client.post("/api/spots", json={"dx": call, "freq": 7010.0 + i, "comment": "599"})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        bad = await client.post("/api/spots", json={"dx": "JA1XYZ", "freq": -5})
        assert bad.status_code == 400 and bad.json()["field"] == "freq"
        dupe = await client.post("/api/spots", json={"dx": "JA1XYZ", "freq": 7010.0, "comment": "599"})
        assert dupe.status_code == 409
        await trio.sleep(0.2)  # history holds what the firehose has sent: the next tick (50 ms) sends these
        history = (await client.get("/api/spots", params={"since": ids[0], "band": "40m"})).json()
        assert [s["id"] for s in history["spots"]] == ids[1:]

    async with open_websocket_url(f"ws://127.0.0.1:{running.http_port}/ws/firehose?since={ids[0]}") as ws:
        got: list[dict[str, Any]] = []
        with trio.fail_after(10):
            while len(got) < 2:
                message = json.loads(await ws.get_message())
                if isinstance(message, list):
                    got += message
        assert [s["id"] for s in got] == ids[1:]
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
            live = (await client.post("/api/spots", json={"dx": "PY2ABC", "freq": 7020.0})).json()
        with trio.fail_after(10):
            message = json.loads(await ws.get_message())
        assert [s["id"] for s in message] == [live["id"]]  # no gap, no duplicate


async def test_qso_insert_reaches_the_firehose(running: Any) -> None:
    user = await add_user(running.db, "K1ABC")
    token = await issue_token(running.db, user["id"])
    url = f"http://127.0.0.1:{running.http_port}"
    async with open_websocket_url(f"ws://127.0.0.1:{running.http_port}/ws/firehose") as ws:
        stamp = datetime.now(UTC)  # the QSO must be recent to be news
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
            # issue 14: private by default; the owner opts in
            assert (await client.get("/api/settings")).json() == {"share_qsos": False}
            private = await client.post("/api/qsos", json={
                "call": "EA8PRV", "qso_date": stamp.strftime("%Y%m%d"), "time_on": stamp.strftime("%H%M"),
                "freq": "21.074", "mode": "FT8"})
            assert private.status_code == 201, private.text
            r = await client.patch("/api/settings", json={"share_qsos": True})
            assert r.json() == {"share_qsos": True}
            r = await client.patch("/api/settings", json={"share_qsos": "yes"})
            assert r.status_code == 400 and r.json()["field"] == "share_qsos"
            r = await client.post("/api/qsos", json={
                "call": "EA8XYZ", "qso_date": stamp.strftime("%Y%m%d"), "time_on": stamp.strftime("%H%M"),
                "freq": "21.074", "mode": "FT8", "rst_sent": "-12",
                "station_callsign": "W1AW", "operator": "W1AW"})  # issue 10: never the spotter
            assert r.status_code == 201, r.text
            old = await client.post("/api/qsos", json={"call": "EA8OLD", "qso_date": "20200101",
                                                       "time_on": "1200", "freq": "21.074", "mode": "FT8"})
            assert old.status_code == 201
        with trio.fail_after(10):
            message = json.loads(await ws.get_message())
        (spot,) = message
        assert (spot["spotter"], spot["dx"], spot["freq"], spot["source"]) == ("K1ABC", "EA8XYZ", 21074.0, "qso")
        assert spot["band"] == "15m" and "FT8" in spot["comment"]
        with trio.move_on_after(0.5):
            extra = await ws.get_message()
            raise AssertionError(f"an old QSO is not news: {extra}")


async def test_non_ascii_digits_are_refused_and_the_server_stays_up(running: Any) -> None:
    """`"²".isdigit()` is true but int("²") fails: such input must be a 400, not a crash."""
    port = running.http_port
    client = await raw_ws_client(port, "/ws/firehose?since=%C2%B2")
    head = await read_until(client, b"\r\n\r\n", bytearray())
    assert head.startswith(b"HTTP/1.1 400 "), head
    await client.aclose()
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws/firehose") as ws:
        await ws.send_message(json.dumps({"subscribe": {"dxcc": ["\u00b2"]}}))
        with trio.fail_after(10):
            reply = json.loads(await ws.get_message())
        assert reply["type"] == "error" and reply["field"] == "dxcc"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        assert (await http.get("/api/spots", params={"limit": "\u00b2"})).status_code == 400
        assert (await http.get("/healthz")).status_code == 200
