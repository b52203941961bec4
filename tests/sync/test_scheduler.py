"""The scheduler: timing under trio's autojump clock (state kept in memory), then the PostgreSQL store
and its advisory lock against a real database."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio

from hamsrv.db.database import Database
from hamsrv.sync.scheduler import Job, JobBusy, JobState, PgStateStore, Scheduler, SyncError

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def virtual_now() -> datetime:
    """Wall time that follows trio's (virtual) clock, so stored next-run times line up with sleeps."""
    return EPOCH + timedelta(seconds=trio.current_time())


class MemoryStore:
    """Job states in a dict and a lock set: the scheduler's single-node view, for virtual-time tests."""

    def __init__(self) -> None:
        self.saved: dict[str, JobState] = {}
        self.held: set[str] = set()

    async def load(self, name: str) -> JobState | None:
        return self.saved.get(name)

    async def save(self, state: JobState) -> None:
        self.saved[state.name] = state

    @asynccontextmanager
    async def lock(self, name: str) -> AsyncIterator[bool]:
        if name in self.held:
            yield False
            return
        self.held.add(name)
        try:
            yield True
        finally:
            self.held.discard(name)


def recorder(times: list[float], fail_first: int = 0, error: Exception | None = None):
    async def run(progress) -> str:
        times.append(trio.current_time())
        if len(times) <= fail_first:
            raise error or SyncError("FCC answered 503")
        return f"run {len(times)}"
    return run


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 6) for a, b in zip(times, times[1:], strict=False)]


async def test_runs_every_interval_with_jitter(autojump_clock, nursery):
    times: list[float] = []
    scheduler = Scheduler(MemoryStore(), rng=random.Random(7), now=virtual_now)
    scheduler.add(Job("noaa", recorder(times), interval=3600, jitter=0.1))
    await nursery.start(scheduler.run)
    await trio.sleep(10 * 3600 + 1)
    assert times[0] == pytest.approx(trio.current_time() - 10 * 3600 - 1, abs=1)  # first run at once
    assert 9 <= len(gaps(times)) <= 11
    assert all(3240 <= g <= 3960 for g in gaps(times)), gaps(times)
    assert len(set(gaps(times))) > 1  # the jitter really varies
    state = scheduler.states["noaa"]
    assert state.status == "ok" and state.summary == f"run {len(times)}" and state.failures == 0


async def test_failures_back_off_exponentially_then_recover(autojump_clock, nursery):
    times: list[float] = []
    store = MemoryStore()
    scheduler = Scheduler(store, now=virtual_now)
    scheduler.add(Job("fcc", recorder(times, fail_first=5), interval=86400, jitter=0,
                      retry_min=60, retry_max=600))
    await nursery.start(scheduler.run)
    await trio.sleep(2 * 86400 - 1000)
    assert gaps(times)[:6] == [60, 120, 240, 480, 600, 86400]  # capped at retry_max, then the interval
    state = store.saved["fcc"]
    assert state.status == "ok" and state.failures == 0
    assert state.error == "FCC answered 503"  # the last error stays readable after the recovery
    assert state.last_error_at is not None and state.last_ok_at is not None


async def test_a_failing_job_never_stops_the_others(autojump_clock, nursery):
    bad: list[float] = []
    good: list[float] = []
    scheduler = Scheduler(MemoryStore(), now=virtual_now)
    scheduler.add(Job("bad", recorder(bad, fail_first=10**6, error=ZeroDivisionError("division by zero")),
                      interval=600, jitter=0, retry_min=30, retry_max=300))
    scheduler.add(Job("good", recorder(good), interval=600, jitter=0))
    await nursery.start(scheduler.run)
    await trio.sleep(6000 + 1)
    assert len(good) == 11
    assert len(bad) > 11  # it keeps failing and being retried
    assert scheduler.states["bad"].error == "unexpected ZeroDivisionError: division by zero"
    assert scheduler.states["bad"].failures == len(bad)
    assert scheduler.states["good"].status == "ok"


async def test_a_run_past_its_timeout_is_cancelled_and_recorded(autojump_clock, nursery):
    started: list[float] = []

    async def hang(progress) -> str:
        started.append(trio.current_time())
        await trio.sleep_forever()
        return ""

    scheduler = Scheduler(MemoryStore(), now=virtual_now)
    scheduler.add(Job("pdns", hang, interval=3600, timeout=90, jitter=0, retry_min=10))
    await nursery.start(scheduler.run)
    await trio.sleep(95)
    state = scheduler.states["pdns"]
    assert state.status == "error" and state.error == "timed out after 90 s"
    assert state.duration_s == pytest.approx(90)
    await trio.sleep(10)
    assert gaps(started) == [100.0]  # 90 s running + 10 s backoff


async def test_per_user_jobs_come_and_go_while_running(autojump_clock, nursery):
    times: list[float] = []
    scheduler = Scheduler(MemoryStore(), now=virtual_now)
    await nursery.start(scheduler.run)
    scheduler.add(Job("lotw:W1AW", recorder(times), interval=60, jitter=0, owner_id=1))
    await trio.sleep(150)
    assert len(times) == 3
    assert scheduler.states["lotw:W1AW"].owner_id == 1
    scheduler.remove("lotw:W1AW")
    await trio.sleep(600)
    assert len(times) == 3
    assert [j.name for j in scheduler.jobs()] == []


async def test_wake_runs_a_job_now(autojump_clock, nursery):
    times: list[float] = []
    scheduler = Scheduler(MemoryStore(), now=virtual_now)
    scheduler.add(Job("noaa", recorder(times), interval=3600, jitter=0))
    await nursery.start(scheduler.run)
    await trio.sleep(100)
    scheduler.wake("noaa")
    await trio.sleep(1)
    assert gaps(times) == [100.0]


async def test_a_restart_keeps_the_stored_next_run(autojump_clock, nursery):
    store = MemoryStore()
    store.saved["fcc"] = JobState("fcc", status="ok", next_run_at=virtual_now() + timedelta(hours=5))
    times: list[float] = []
    scheduler = Scheduler(store, now=virtual_now)
    scheduler.add(Job("fcc", recorder(times), interval=86400))
    await nursery.start(scheduler.run)
    await trio.sleep(5 * 3600 - 10)
    assert times == []
    await trio.sleep(20)
    assert len(times) == 1


async def test_a_job_locked_elsewhere_is_skipped_and_retried(autojump_clock, nursery):
    store = MemoryStore()
    store.held.add("fcc")  # another node holds it
    times: list[float] = []
    scheduler = Scheduler(store, now=virtual_now)
    job = Job("fcc", recorder(times), interval=86400)
    with pytest.raises(JobBusy):
        await scheduler.run_once(job)
    scheduler.add(job)
    await nursery.start(scheduler.run)
    await trio.sleep(200)
    assert times == []
    store.held.clear()
    await trio.sleep(61)
    assert len(times) == 1


# ---- the PostgreSQL store (real database, real clock)

async def test_pg_store_round_trips_a_state(db: Database):
    store = PgStateStore(db)
    assert await store.load("noaa") is None
    when = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    state = JobState("noaa", status="error", error="NOAA answered 500", failures=2, last_error_at=when,
                     next_run_at=when + timedelta(minutes=4), duration_s=0.25, node="n1")
    await store.save(state)
    assert await store.load("noaa") == state
    state.failures = 0
    await store.save(state)
    assert (await store.load("noaa")).failures == 0  # type: ignore[union-attr]


async def test_pg_lock_lets_one_node_at_a_time(db: Database, db_url: str, tmp_path: Path):
    other_node = await Database.open(db_url, tmp_path, pool_size=2)
    try:
        mine, theirs = PgStateStore(db), PgStateStore(other_node)
        async with mine.lock("fcc") as got:
            assert got
            async with theirs.lock("fcc") as got_too:
                assert not got_too
            async with theirs.lock("noaa") as got_other_job:
                assert got_other_job
        async with theirs.lock("fcc") as got_after:
            assert got_after
    finally:
        await other_node.close()


async def test_scheduler_with_postgres_records_health(db: Database, nursery):
    runs: list[float] = []

    async def flaky(progress) -> str:
        runs.append(trio.current_time())
        if len(runs) == 1:
            raise SyncError("zip truncated at 41 MB")
        return "41,017 licences"

    store = PgStateStore(db)
    scheduler = Scheduler(store)
    scheduler.add(Job("fcc", flaky, interval=3600, retry_min=0.2, jitter=0))
    await nursery.start(scheduler.run)
    with trio.fail_after(20):
        while len(runs) < 2 or scheduler.states["fcc"].status != "ok":
            await trio.sleep(0.05)
    state = await store.load("fcc")
    assert state is not None
    assert state.status == "ok" and state.summary == "41,017 licences" and state.failures == 0
    assert state.error == "zip truncated at 41 MB"
    assert state.next_run_at is not None
    assert timedelta(minutes=59) < state.next_run_at - state.last_ok_at <= timedelta(hours=1)  # type: ignore[operator]
