"""Hostile HTTP clients against a running `hamsrv serve`: slowloris heads and bodies, upload bombs.
Throughout, /healthz answers, a normal firehose client gets every spot, and RSS stays under a bound."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from bench.loadgen import ak1a_line, spot_values
from hamsrv.db.database import Database
from hamsrv.identity.tokens import add_user, issue_token
from tests.served import Served, start_serve

RSS_BOUND_MB = 300  # the server idles near 70 MB; what these attacks may add stays well below this


@pytest.fixture
def served(tmp_path: Path, db_url: str) -> Iterator[Served]:
    server = start_serve(tmp_path, db_url, HAMSRV_BODY_TIMEOUT="2", HAMSRV_MAX_UPLOAD_MB="4")
    try:
        yield server
    finally:
        assert server.stop() == 0, server.log.read_text()[-2000:]


async def token_for(db_url: str, tmp_path: Path, call: str = "W1AW") -> str:
    db = await Database.open(db_url, tmp_path, run_migrations=False)
    try:
        return await issue_token(db, (await add_user(db, call))["id"])
    finally:
        await db.close()


async def feed(port: int, count: int, per_second: float) -> list[str]:
    """Publish `count` spots through the cluster port as a feed; returns their DX calls."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        seen = b""
        with trio.fail_after(10):
            while b"login:" not in seen.lower():
                seen += await stream.receive_some()
        await stream.send_all(b"N0CALL\r\n")
        await trio.sleep(0.3)
        calls = []
        for seq in range(1, count + 1):
            now = time.time()
            calls.append(spot_values(seq, "a", now)[1])
            await stream.send_all(ak1a_line(seq, "a", now))
            await trio.sleep(1 / per_second)
        await trio.sleep(0.5)
        return calls


async def firehose(url: str, got: list[str], ready: trio.Event) -> None:
    async with open_websocket_url(url.replace("http", "ws") + "/ws/firehose") as ws:
        ready.set()
        while True:
            message = json.loads(await ws.get_message())
            if isinstance(message, list):
                got.extend(spot["dx"] for spot in message)


async def health_checks(url: str, failures: list[str], stop: trio.Event) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=3) as client:
        while not stop.is_set():
            try:
                response = await client.get("/healthz")
                if response.status_code != 200:
                    failures.append(f"healthz {response.status_code}")
            except httpx.HTTPError as exc:
                failures.append(f"healthz {exc!r}")
            await trio.sleep(0.5)


async def under_attack(served: Served, attack: AsyncIterator[None] | None, attackers: int,
                       make_attacker) -> None:  # type: ignore[no-untyped-def]
    """Run `attackers` copies of `make_attacker()` while spots flow; check health, delivery and RSS."""
    got: list[str] = []
    failures: list[str] = []
    peak_rss = 0.0
    async with trio.open_nursery() as nursery:
        ready, stop = trio.Event(), trio.Event()
        nursery.start_soon(firehose, served.url, got, ready)
        await ready.wait()
        for _ in range(attackers):
            nursery.start_soon(make_attacker)
        nursery.start_soon(health_checks, served.url, failures, stop)
        calls = await feed(served.cluster_port, 60, 10)
        with trio.move_on_after(5):
            while not set(calls) <= set(got):
                await trio.sleep(0.1)
        peak_rss = served.rss_mb()
        stop.set()
        nursery.cancel_scope.cancel()
    assert set(calls) <= set(got), f"{len(set(calls) - set(got))} spots missed"
    assert not failures, failures[:5]
    assert served.alive()
    assert peak_rss < RSS_BOUND_MB, peak_rss


async def test_slowloris_heads_and_bodies(served: Served, db_url: str, tmp_path: Path) -> None:
    token = (await token_for(db_url, tmp_path)).encode()
    host, port = served.url.removeprefix("http://").split(":")

    async def slow_head() -> None:
        async with await trio.open_tcp_stream(host, int(port)) as stream:
            await stream.send_all(b"GET /api/qsos HTTP/1.1\r\nHost: x\r\n")
            for _ in range(60):  # a header byte a second, never the blank line
                await stream.send_all(b"X")
                await trio.sleep(1)

    async def slow_body() -> None:
        async with await trio.open_tcp_stream(host, int(port)) as stream:
            await stream.send_all(b"POST /api/imports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token
                                  + b"\r\nContent-Length: 1000000\r\n\r\n<EOH>")
            answer = b""
            with trio.move_on_after(30):
                while data := await stream.receive_some():
                    answer += data
            assert answer.startswith(b"HTTP/1.1 408"), answer[:100]

    async def both() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(slow_head)
            nursery.start_soon(slow_body)

    await under_attack(served, None, 100, both)
    async with httpx.AsyncClient(base_url=served.url, headers={"Authorization": f"Bearer {token.decode()}"}) as c:
        assert (await c.get("/api/imports")).json()["imports"] == []  # no stalled upload became a job


async def test_upload_bombs(served: Served, db_url: str, tmp_path: Path) -> None:
    token = await token_for(db_url, tmp_path)
    headers = {"Authorization": f"Bearer {token}"}
    answers: list[int] = []

    async def bombs() -> AsyncIterator[bytes]:
        block = b"<CALL:4>K1AB<QSO_DATE:8>20240101<TIME_ON:4>1200<EOR>\n" * 2000
        for _ in range(200):  # 20 MB, past the 4 MiB limit, sent without a Content-Length
            yield block

    async def bomber() -> None:
        async with httpx.AsyncClient(base_url=served.url, headers=headers, timeout=30) as client:
            answers.append((await client.post("/api/imports", content=bombs())).status_code)
        host, port = served.url.removeprefix("http://").split(":")
        async with await trio.open_tcp_stream(host, int(port)) as stream:  # declares 10 GB, sends none
            await stream.send_all(b"POST /api/imports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                                  + token.encode() + b"\r\nContent-Length: 10000000000\r\n\r\n")
            with trio.fail_after(10):
                answers.append(int((await stream.receive_some()).split(b" ")[1]))

    await under_attack(served, None, 8, bomber)
    assert answers and set(answers) == {413}, answers
    async with httpx.AsyncClient(base_url=served.url, headers=headers) as client:
        assert (await client.get("/api/imports")).json()["imports"] == []
