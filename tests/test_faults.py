"""Faults under a running `hamsrv serve`: PostgreSQL restarted while serving and while imports run
(requests fail cleanly, then recover; jobs resume; nothing lost or duplicated), and a full data dir."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from bench.ingest import synthetic_records
from tests.served import start_serve
from tests.test_abuse import token_for


@pytest.fixture
def own_pg(tmp_path: Path) -> Iterator[Any]:
    """A PostgreSQL server of this test's own, so it can be stopped and started."""
    import pgserver

    server = pgserver.get_server(tmp_path / "pg", cleanup_mode="stop")
    try:
        yield server
    finally:
        server.cleanup()


def pg_ctl(server: Any, *args: str) -> None:
    from pgserver._commands import pg_ctl as run

    run(["-w", *args], pgdata=server.pgdata, user=server.system_user, timeout=60)


def pg_stop(server: Any) -> list[str]:
    """Stop the server; returns the options it ran with (pgserver's socket dir and so on)."""
    import shlex

    words = shlex.split((Path(server.pgdata) / "postmaster.opts").read_text())[1:]
    pg_ctl(server, "-m", "fast", "stop")
    return words


def pg_start(server: Any, options: list[str]) -> None:
    import shlex

    pg_ctl(server, "-o", shlex.join(options), "start")


async def test_postgres_restarted_while_serving_and_importing(own_pg: Any, tmp_path: Path) -> None:
    served = start_serve(tmp_path, own_pg.get_uri())
    try:
        token = await token_for(own_pg.get_uri(), tmp_path)
        data = b"<EOH>\n" + b"".join(synthetic_records(30000))
        async with httpx.AsyncClient(base_url=served.url, headers={"Authorization": f"Bearer {token}"},
                                     timeout=30) as client:
            jobs = [(await client.post("/api/imports", content=data[:len(data) // 2] if i else data,
                                       headers={"Idempotency-Key": f"k{i}"})).headers["Location"]
                    for i in range(2)]
            with trio.fail_after(60):
                while (await client.get(jobs[0])).json()["records_read"] == 0:
                    await trio.sleep(0.01)
            options = await trio.to_thread.run_sync(pg_stop, own_pg)
            statuses = {(await client.get(path)).status_code for path in ("/api/qsos", "/healthz", jobs[0])}
            assert statuses == {503}, statuses  # clean JSON errors, never a 500 or a dead server
            assert served.alive()
            await trio.to_thread.run_sync(pg_start, own_pg, options)
            with trio.fail_after(120):  # the runner retries; both jobs finish
                while [(await client.get(j)).json()["status"] for j in jobs] != ["done", "done"]:
                    await trio.sleep(0.2)
            assert (await client.get("/api/qsos")).status_code == 200
            first, second = [(await client.get(j)).json() for j in jobs]
        # The jobs race for the 15,000 QSOs they share: which one stores each is not defined, the sum is.
        assert first["records_read"] == 30000 and second["records_read"] == 15000
        assert first["inserted"] + second["inserted"] == 30000
        for job in (first, second):
            assert job["inserted"] + job["duplicates"] == job["records_read"]
        assert served.alive()
    finally:
        code = served.stop()
    assert code == 0, served.log.read_text()[-3000:]
    import psycopg
    with psycopg.connect(own_pg.get_uri()) as conn:
        [(count, distinct)] = conn.execute("SELECT count(*), count(DISTINCT (call, start_at, band, mode))"
                                           " FROM qsos").fetchall()
    assert count == distinct == 30000  # nothing lost, nothing stored twice


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB filesystem for the data dir (tmpfs; the tests run as root, as CI does)."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


async def test_a_full_data_dir_refuses_the_upload_and_keeps_serving(db_url: str, tmp_path: Path,
                                                                     tiny_disk: Path) -> None:
    served = start_serve(tiny_disk, db_url)
    try:
        token = await token_for(db_url, tmp_path)
        async with httpx.AsyncClient(base_url=served.url, headers={"Authorization": f"Bearer {token}"},
                                     timeout=30) as client:
            big = b"<EOH>\n" + b"".join(synthetic_records(60000))  # several MiB: does not fit
            assert len(big) > 4 << 20
            response = await client.post("/api/imports", content=big)
            assert response.status_code == 507, response.text
            listed = (await client.get("/api/imports")).json()
            assert listed["imports"] == [], listed  # nothing half-stored
            small = await client.post("/api/imports", content=b"<EOH>\n" + b"".join(synthetic_records(10)))
            assert small.status_code == 202  # the spool file went away: room again
            assert (await client.get("/healthz")).status_code == 200
    finally:
        assert served.stop() == 0
