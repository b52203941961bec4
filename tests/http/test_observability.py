"""Issue 14: /metrics covers HTTP requests, imports, the database pool and the process; the access log
is a setting; every refusal has a JSON body."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import httpx
import pytest
import trio

from hamsrv import config as config_mod
from hamsrv.db.database import Database
from hamsrv.identity.tokens import add_user, issue_token
from tests.api import running_api
from tests.testdata import TESTDATA


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in Prometheus text (labels in any order), or raise."""
    for line in text.splitlines():
        if not line.startswith(name + "{" if labels else name + " "):
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if labels else {}
        if got == labels:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} {labels} in /metrics")


async def test_http_pool_and_process_metrics_and_the_access_log(db: Database, nursery: trio.Nursery,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hamsrv.access")
    async with running_api(db, nursery, access_log=True) as api, api.client(api.token) as client:
        for _ in range(3):
            assert (await client.get("/api/qsos/424242")).status_code == 404
        assert (await client.get("/api/qsos", params={"limit": "1"})).status_code == 200
        async with api.client() as anonymous:
            assert (await anonymous.get("/api/qsos")).status_code == 401
        text = (await client.get("/metrics")).text
    route = "/api/qsos/<int:qso_id>"  # the rule, not the id: no series per QSO
    assert sample(text, "hamsrv_http_requests_total", method="GET", route=route, status="404") == 3
    assert sample(text, "hamsrv_http_requests_total", method="GET", route="/api/qsos", status="401") == 1
    assert sample(text, "hamsrv_http_request_duration_seconds_count", method="GET", route=route) == 3
    assert sample(text, "hamsrv_http_request_duration_seconds_bucket", method="GET", route=route, le="+Inf") == 3
    assert sample(text, "hamsrv_db_pool_size") >= 1 and sample(text, "hamsrv_db_pool_in_use") >= 0
    assert sample(text, "hamsrv_db_pool_waits_total") >= 0 and sample(text, "hamsrv_db_pool_connects_total") >= 1
    assert sample(text, "process_resident_memory_bytes") > 10_000_000
    assert sample(text, "process_cpu_seconds_total") > 0 and sample(text, "process_open_fds") > 3
    lines = [r.getMessage() for r in caplog.records if r.name == "hamsrv.access"]
    assert any(re.fullmatch(r'127\.0\.0\.1 "GET /api/qsos/424242" 404 \d+ [\d.]+ms', line) for line in lines), lines
    assert any('"GET /api/qsos?limit=1" 200' in line for line in lines)


def test_the_access_log_is_a_setting() -> None:
    assert config_mod.load({}, env={"HAMSRV_ACCESS_LOG": "on"}).access_log is True
    assert config_mod.load({}, env={}).access_log is False


async def test_no_access_log_unless_asked(api: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hamsrv.access")
    async with api.client() as client:
        await client.get("/healthz")
    assert not [r for r in caplog.records if r.name == "hamsrv.access"]


async def test_import_metrics_and_json_refusals(running: Any) -> None:
    user = await add_user(running.db, "W1AW")
    token = await issue_token(running.db, user["id"])
    url = f"http://127.0.0.1:{running.http_port}"
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        data = (TESTDATA / "adif" / "pyadif_latin1.adi").read_bytes()
        broken = b'<?xml version="1.0"?>\n<ADX><HEADER><</ADX>'  # broken XML, no record: the job fails
        for body, status in ((data, "done"), (broken, "failed")):
            job = (await client.post("/api/imports", content=body)).json()
            with trio.fail_after(30):
                while (await client.get(f"/api/imports/{job['id']}")).json()["status"] != status:
                    await trio.sleep(0.1)
        text = (await client.get("/metrics")).text
    assert sample(text, "hamsrv_import_jobs", status="done") == 1
    assert sample(text, "hamsrv_import_jobs", status="failed") == 1  # issue 14: import failures
    assert sample(text, "hamsrv_import_records", outcome="inserted") == 2
    assert sample(text, "hamsrv_import_records", outcome="rejected") == 3
    assert sample(text, "hamsrv_import_records", outcome="up_to_date") == 0  # a merge's unchanged QSOs
    assert sample(text, "hamsrv_import_records_per_second") == 0  # nothing running now
    # the firehose's own refusals (before the upgrade) have a JSON body too
    stream = await trio.open_tcp_stream("127.0.0.1", running.http_port)
    await stream.send_all(b"GET /ws/firehose?band=21m HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          b"Sec-WebSocket-Version: 13\r\n\r\n")
    answer = b""
    with trio.fail_after(10):
        while chunk := await stream.receive_some(4096):
            answer += chunk
    await stream.aclose()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"Content-Type: application/json" in head
    assert "21m" in json.loads(body)["error"]
