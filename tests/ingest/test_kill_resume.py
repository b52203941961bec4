"""A server killed with SIGKILL in the middle of an import resumes the job on restart and ends with
exactly the rows of an uninterrupted import (`hamsrv serve` as a real subprocess)."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
import trio
from psycopg.conninfo import conninfo_to_dict

from bench.ingest import synthetic_records
from hamsrv.db.database import Database
from hamsrv.identity.tokens import add_user, issue_token
from hamsrv.ingest.jobs import import_stream

REPO = Path(__file__).resolve().parents[2]
ROWS = "SELECT call, start_at, band, mode, freq, rst_sent, extra FROM qsos WHERE owner_id = %s ORDER BY start_at, call"
UNIQUE, REPEATED = 100_000, 4_000  # five batches and a bit: the kill lands after the first
DATA = b"".join(synthetic_records(UNIQUE)) + b"".join(synthetic_records(REPEATED))


def free_port() -> int:
    """A free port below the ephemeral range (DESIGN: ports in tests)."""
    while True:
        port = random.randrange(20_000, 32_000)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def as_url(conninfo: str) -> str:
    params = conninfo_to_dict(conninfo)
    query = urlencode({k: v for k, v in params.items() if k not in ("user", "password", "dbname")})
    return f"postgresql://{quote(str(params.get('user', '')))}@/{params['dbname']}?{query}"


@pytest.fixture
def serve(db_url: str, tmp_path: Path) -> Iterator[Any]:
    """Starts `hamsrv serve` on fixed free ports; every process it started is killed at the end."""
    port = free_port()
    env = {**os.environ, "HAMSRV_DATABASE_URL": as_url(db_url), "HAMSRV_DATA_DIR": str(tmp_path),
           "HAMSRV_HTTP_BIND": f"127.0.0.1:{port}", "HAMSRV_CLUSTER_BIND": f"127.0.0.1:{free_port()}"}
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-m", "hamsrv.cli", "serve"], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=open(tmp_path / "serve.log", "ab"))  # noqa: SIM115
        started.append(proc)
        return proc

    start.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    yield start
    for proc in started:
        proc.kill()
        proc.wait()


async def wait_ready(url: str) -> None:
    with trio.fail_after(30):
        async with httpx.AsyncClient(base_url=url) as client:
            while True:
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await trio.sleep(0.1)


async def chunks_of(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1 << 20):
        yield data[start:start + (1 << 20)]


async def test_sigkill_mid_import_then_resume(db: Database, serve: Any):
    user, reference = await add_user(db, "W1AW"), await add_user(db, "K1ABC")
    headers = {"Authorization": f"Bearer {await issue_token(db, user['id'])}"}
    first = serve()
    await wait_ready(serve.url)
    async with httpx.AsyncClient(base_url=serve.url, headers=headers, timeout=30) as client:
        response = await client.post("/api/imports", content=DATA)
        assert response.status_code == 202
        location = response.headers["Location"]
        with trio.fail_after(60):
            while (await client.get(location)).json()["records_read"] == 0:
                await trio.sleep(0.01)
    first.kill()  # SIGKILL: no cleanup of any kind
    first.wait()
    killed = await db.fetchrow("SELECT * FROM import_jobs")
    assert killed is not None and killed["status"] == "running"
    assert 0 < killed["records_read"] < UNIQUE + REPEATED, "the kill came too late to test a resume"
    stored = await db.fetchrow("SELECT count(*) AS n FROM qsos WHERE owner_id = %s", [user["id"]])
    assert stored == {"n": killed["inserted"]}  # counters and rows were committed together

    serve()
    await wait_ready(serve.url)
    async with httpx.AsyncClient(base_url=serve.url, headers=headers, timeout=30) as client:
        with trio.fail_after(120):
            while (job := (await client.get(location)).json())["status"] not in ("done", "failed"):
                await trio.sleep(0.05)
    assert job["status"] == "done", job
    assert (job["records_read"], job["inserted"], job["duplicates"], job["rejected"]) == (
        UNIQUE + REPEATED, UNIQUE, REPEATED, 0)

    uninterrupted = await import_stream(db, reference["id"], chunks_of(DATA))
    assert (uninterrupted.inserted, uninterrupted.duplicates) == (UNIQUE, REPEATED)
    assert await db.fetch(ROWS, [user["id"]]) == await db.fetch(ROWS, [reference["id"]])
