"""Database faults at the boundaries: a connection killed inside a transaction, a database host that
stops answering (its backends SIGSTOPped) while a job runner is cancelled."""

from __future__ import annotations

import os
import signal
import time

import psycopg
import pytest
import trio

from hamsrv.db.database import Database, fetch_on
from hamsrv.errors import DatabaseError
from hamsrv.ingest.jobs import UNLOCK_TIMEOUT, JobRunner
from tests.ingest.test_jobs import new_owner, queue


async def test_a_commit_that_fails_is_a_database_error(db: Database):
    with pytest.raises(DatabaseError):
        async with db.transaction() as conn:
            [me] = await fetch_on(conn, "SELECT pg_backend_pid() AS pid")
            await db.execute("SELECT pg_terminate_backend(%s)", [me["pid"]])
    assert await db.ping()  # the pool replaced the dead connection


def _backends(admin_url: str, dbname: str) -> list[int]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [dbname]).fetchall()
    return [pid for (pid,) in rows]


async def test_a_runner_stops_on_cancel_even_when_the_database_stopped_answering(
        db: Database, db_url: str, pg_admin_url: str):
    from bench.ingest import synthetic_records

    owner = await new_owner(db, "W1AW")
    job_id = await queue(db, owner, b"<EOH>" + b"".join(synthetic_records(20000)), chunk=1 << 14)
    runner = JobRunner(db, batch_records=50, poll_interval=0.05)
    dbname = psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]
    stopped: list[int] = []
    forced = False

    async def watchdog() -> None:  # without deadlines the runner never returns: let it, then fail
        nonlocal forced
        await trio.sleep(40)
        forced = True
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)

    async with trio.open_nursery() as outer:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as inner:
                await inner.start(runner.run)
                with trio.fail_after(20):
                    while (row := await db.fetchrow("SELECT records_read FROM import_jobs WHERE id = %s",
                                                    [job_id])) and row["records_read"] < 100:
                        await trio.sleep(0.02)
                stopped += await trio.to_thread.run_sync(_backends, pg_admin_url, dbname)
                for pid in stopped:
                    os.kill(pid, signal.SIGSTOP)
                outer.start_soon(watchdog)
                began = time.monotonic()
                scope.cancel()
        took = time.monotonic() - began
        if not forced:
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)
        outer.cancel_scope.cancel()
    # the query in flight, its rollback and the unlock each get 5 s at most
    assert not forced and took < 4 * UNLOCK_TIMEOUT, took
