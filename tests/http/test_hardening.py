"""Hostile HTTP clients against the real listener and app: huge numbers, big JSON, stalled and slow
uploads. Each test failed before its fix (500s, a pool held by slow uploads, a body that never ends)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from hamsrv.db.database import Database
from tests.api import Api, running_api

ADI = b"<EOH>\n<CALL:4>K1AB<QSO_DATE:8>20240101<TIME_ON:4>1200<BAND:3>20m<MODE:2>CW<EOR>\n"


async def test_a_number_of_5000_digits_is_a_400_not_a_500(api: Api):
    async with api.client() as client:
        response = await client.get("/api/spots", params={"limit": "1" * 5000})
    assert response.status_code == 400
    assert response.json()["field"] == "limit"


async def test_json_routes_refuse_bodies_over_their_limit(db: Database, nursery: trio.Nursery):
    async with running_api(db, nursery, max_json_bytes=64 << 10) as api, api.client(api.token) as client:
        big = b'{"call": "K1ABC", "comment": "' + b"x" * (100 << 10) + b'"}'
        response = await client.post("/api/qsos", content=big)
        assert response.status_code == 413
        small = await client.post("/api/qsos", json={"call": "K1ABC", "qso_date": "20240101",
                                                     "time_on": "1200", "band": "20m", "mode": "CW"})
        assert small.status_code == 201, small.text


async def _stalled_upload(port: int, token: str, sent: trio.Event) -> bytes:
    """Headers and part of an upload, then nothing: what a slow or hostile client does."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"POST /api/imports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode()
                              + b"\r\nContent-Length: 100000\r\n\r\n" + ADI)
        sent.set()
        answer = b""
        with trio.move_on_after(30):
            while b"\r\n\r\n" not in answer:
                data = await stream.receive_some()
                if not data:
                    break
                answer += data
        return answer


async def test_stalled_uploads_hold_no_database_connection(db_url: str, tmp_path, nursery: trio.Nursery):
    small = await Database.open(db_url, tmp_path, pool_size=2)
    small.pool.acquire_timeout = 3.0
    try:
        async with running_api(small, nursery) as api:
            for _ in range(4):  # twice the pool
                sent = trio.Event()
                nursery.start_soon(_stalled_upload, api.port, api.token, sent)
                await sent.wait()
            await trio.sleep(0.3)
            async with api.client(api.token) as client:
                with trio.fail_after(10):
                    response = await client.get("/api/qsos")
            assert response.status_code == 200, response.text
            nursery.cancel_scope.cancel()
    finally:
        await small.close()


@pytest.fixture
async def impatient(db: Database, nursery: trio.Nursery) -> AsyncIterator[Api]:
    async with running_api(db, nursery, body_timeout=0.5) as served:
        yield served


async def test_a_stalled_upload_gets_408_and_leaves_no_job(impatient: Api):
    sent = trio.Event()
    with trio.fail_after(10):
        answer = await _stalled_upload(impatient.port, impatient.token, sent)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    async with impatient.client(impatient.token) as client:
        assert (await client.get("/api/imports")).json()["imports"] == []


async def test_a_stalled_json_body_gets_408(impatient: Api):
    async with await trio.open_tcp_stream("127.0.0.1", impatient.port) as stream:
        await stream.send_all(b"POST /api/qsos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                              + impatient.token.encode() + b"\r\nContent-Length: 1000\r\n\r\n{\"call\"")
        with trio.fail_after(10):
            answer = await stream.receive_some()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


async def test_an_upload_is_still_stored_whole(api: Api):
    async with api.client(api.token) as client:
        response = await client.post("/api/imports", content=ADI * 3 + b"x" * 10)
        assert response.status_code == 202, response.text
        job = (await client.get(response.headers["Location"])).json()
    assert job["size_bytes"] == len(ADI) * 3 + 10


async def test_the_json_limit_is_a_setting(app_config, nursery: trio.Nursery):
    from dataclasses import replace

    from hamsrv.app import Running, run
    from hamsrv.identity.tokens import add_user, issue_token

    handle: Running = await nursery.start(lambda task_status: run(
        replace(app_config, max_json_kb=1), handle_signals=False, task_status=task_status))
    token = await issue_token(handle.db, (await add_user(handle.db, "W1AW"))["id"])
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{handle.http_port}",
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        response = await client.post("/api/spots", content=b'{"comment": "' + b"x" * 2000 + b'"}')
    assert response.status_code == 413
    handle.shutdown.set()
