"""The sync scheduler: timed jobs in the root nursery, each with visible health.

A job is an async function run every `interval` seconds (plus or minus `jitter`), under a `timeout`,
retried after a failure with exponential backoff. A failing job only records its error: it never stops
the other jobs or the server. Each job's state (last success, last error in plain words, next run) lives
in PostgreSQL (`sync_state`), so it survives restarts and is the same for every node sharing the database;
a per-job advisory lock makes sure only one node runs a job at a time.

Per-user jobs (LoTW or eQSL for one user) are ordinary jobs with an `owner_id` and a name such as
`lotw:W1AW`; add and remove them while the scheduler runs. See /work/notes/scheduler-api.md.
"""

from __future__ import annotations

import logging
import random
import socket
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import trio

from hamsrv.db import sync_state
from hamsrv.db.database import Database, json_value
from hamsrv.errors import DatabaseError, HamsrvError
from hamsrv.metrics import Registry

log = logging.getLogger(__name__)

Progress = Callable[[str], None]  # a job reports its steps in words ("downloaded 41 MB")
LOCK_CLASS = 0x73796E63  # "sync": first key of the two-key advisory lock; the second is the job's hash
BUSY_RETRY = 60.0  # seconds before looking again when another node holds a job's lock


class SyncError(HamsrvError):
    """A sync failed for a reason an operator can read as is ("FCC answered 503")."""


class JobBusy(SyncError):
    """Another node (or another command) is running this job right now."""


@dataclass
class Job:
    """What to run and when. `run` returns a one-line summary of what it did ("41,017 licences")."""

    name: str
    run: Callable[[Progress], Awaitable[str]]
    interval: float  # seconds between the starts of two successful runs
    timeout: float = 600.0  # a run taking longer is cancelled and counts as failed
    jitter: float = 0.05  # fraction of the interval added or taken at random, so nodes and jobs spread out
    retry_min: float = 60.0  # first retry after a failure; doubles with each further failure ...
    retry_max: float | None = None  # ... up to this (default: the interval)
    owner_id: int | None = None  # per-user jobs: the user they belong to
    at_start: bool = False  # also run when the process starts, whatever the stored next run says

    def delay_after(self, failures: int, rng: random.Random) -> float:
        """Seconds until the next run: the interval after a success, else exponential backoff."""
        if failures <= 0:
            base = self.interval
        else:
            cap = self.retry_max if self.retry_max is not None else self.interval
            base = min(cap, self.retry_min * 2 ** min(failures - 1, 60))
        return max(0.0, base * (1 + self.jitter * rng.uniform(-1, 1)))


@dataclass
class JobState:
    """A job's health, as stored in `sync_state` and shown at GET /api/sync."""

    name: str
    status: str = "never"  # never, running, ok, error
    owner_id: int | None = None
    last_run_at: datetime | None = None
    last_ok_at: datetime | None = None
    last_error_at: datetime | None = None
    error: str | None = None  # the last error, in words (kept after a later success, see status)
    failures: int = 0  # failed runs since the last success
    summary: str | None = None  # what the last successful run did
    duration_s: float | None = None
    next_run_at: datetime | None = None
    node: str | None = None

    def as_json(self) -> dict[str, Any]:
        body = {k: json_value(v) for k, v in asdict(self).items() if k != "owner_id"}
        body["healthy"] = self.status in ("ok", "running") and self.failures == 0
        return body


class StateStore(Protocol):
    """Where job states live and how a job is locked across nodes (PostgreSQL in the server)."""

    async def load(self, name: str) -> JobState | None: ...
    async def save(self, state: JobState) -> None: ...
    async def add_missing(self, state: JobState) -> None: ...  # save unless a state is stored already
    def lock(self, name: str) -> Any: ...  # async context manager yielding True when this node got it


_COLUMNS = ("status", "owner_id", "last_run_at", "last_ok_at", "last_error_at", "error", "failures",
            "summary", "duration_s", "next_run_at", "node")


class PgStateStore:
    """Job states in `sync_state`; the lock is a session advisory lock held on one pooled connection
    for the length of the run, so it is released even if this process dies."""

    def __init__(self, db: Database):
        self.db = db

    async def load(self, name: str) -> JobState | None:
        row = await sync_state.get(self.db, name, _COLUMNS)
        return JobState(**row) if row else None

    async def load_all(self, owner_id: int | None = None) -> list[JobState]:
        rows = await sync_state.visible_to(self.db, owner_id, _COLUMNS)
        return [JobState(**row) for row in rows]

    async def save(self, state: JobState) -> None:
        await sync_state.put(self.db, state.name, {c: getattr(state, c) for c in _COLUMNS})

    async def add_missing(self, state: JobState) -> None:
        """Show a new job (as never run) without overwriting what another node stored meanwhile."""
        await sync_state.add_missing(self.db, state.name, state.status, state.owner_id)

    async def forget(self, name: str) -> None:
        await sync_state.delete(self.db, name)

    @asynccontextmanager
    async def lock(self, name: str) -> AsyncIterator[bool]:
        key = [LOCK_CLASS, _lock_key(name)]
        async with self.db.connection() as conn:
            got = await sync_state.try_lock(conn, key)
            try:
                yield got
            finally:
                if got and not conn.closed:
                    # a dead connection took the lock with it: nothing to release then
                    with trio.CancelScope(shield=True), trio.move_on_after(5), suppress(DatabaseError):
                        await sync_state.unlock(conn, key)


def _lock_key(name: str) -> int:
    return zlib.crc32(name.encode()) - 2**31  # a stable signed 32-bit key (hash() is salted per process)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _in_words(exc: BaseException) -> str:
    if isinstance(exc, HamsrvError):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"


@dataclass
class _Entry:
    job: Job
    cancel: trio.CancelScope = field(default_factory=trio.CancelScope)
    wake: trio.Event = field(default_factory=trio.Event)  # set to run the job now


class Scheduler:
    """Runs the jobs it is given, each in its own task of the scheduler's nursery."""

    def __init__(self, store: StateStore, *, metrics: Registry | None = None, max_running: int = 2,
                 node: str | None = None, rng: random.Random | None = None,
                 now: Callable[[], datetime] = _utcnow):
        self.store = store
        self.node = node or socket.gethostname()
        self.rng = rng or random.Random()
        self.now = now
        self._slots = trio.Semaphore(max_running)  # runs at once (each holds a database connection)
        self._entries: dict[str, _Entry] = {}
        self._nursery: trio.Nursery | None = None
        self.states: dict[str, JobState] = {}  # this node's latest view, for /metrics
        if metrics is not None:
            self._register_metrics(metrics)

    # ---- the job list
    def add(self, job: Job) -> None:
        """Schedule a job (replacing one of the same name); it starts at once if the scheduler runs."""
        self.remove(job.name)
        entry = self._entries[job.name] = _Entry(job)
        if self._nursery is not None:
            self._nursery.start_soon(self._loop, entry)

    def remove(self, name: str) -> None:
        """Stop scheduling a job (a run in progress is cancelled). Its stored state stays."""
        entry = self._entries.pop(name, None)
        if entry is not None:
            entry.cancel.cancel()
        self.states.pop(name, None)

    def jobs(self) -> list[Job]:
        return [e.job for e in self._entries.values()]

    def wake(self, name: str) -> None:
        """Run a scheduled job as soon as possible instead of at its next time."""
        self._entries[name].wake.set()

    # ---- running
    async def run(self, *, task_status: trio.TaskStatus[Scheduler] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for entry in self._entries.values():
                nursery.start_soon(self._loop, entry)
            task_status.started(self)
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None

    async def _loop(self, entry: _Entry) -> None:
        job = entry.job
        with entry.cancel:
            state = await self._load(job)
            if job.at_start:
                entry.wake.set()
            while True:
                delay = self._seconds_until(state.next_run_at)
                with trio.move_on_after(delay):
                    await entry.wake.wait()
                woken, entry.wake = entry.wake.is_set(), trio.Event()
                try:
                    state = await self.run_once(job, scheduled=not woken)
                except JobBusy:
                    state = replace(self.states.get(job.name) or state,
                                    next_run_at=self.now() + timedelta(seconds=BUSY_RETRY))

    async def _load(self, job: Job) -> JobState:
        """The stored state; on database trouble a fresh state (the first run will retry)."""
        while True:
            try:
                state = await self.store.load(job.name)
                break
            except DatabaseError as exc:
                log.warning("sync %s: cannot read its state: %s", job.name, exc)
                await trio.sleep(job.retry_min)
        if state is None:  # first time: show it (as never run) at once
            state = JobState(job.name, owner_id=job.owner_id)
            with suppress(DatabaseError):
                await self.store.add_missing(state)
        self.states[job.name] = state
        return state

    def _seconds_until(self, when: datetime | None) -> float:
        return 0.0 if when is None else max(0.0, (when - self.now()).total_seconds())

    async def run_once(self, job: Job, *, progress: Progress | None = None, scheduled: bool = False) -> JobState:
        """Run `job` now under its lock and record the outcome; returns the state after the run.

        `scheduled` runs skip the job when another node ran it meanwhile (its next run lies ahead).
        Raises JobBusy when another node holds the job's lock; never raises for the job's own failures:
        they are in the returned state."""
        say = progress or (lambda text: log.debug("sync %s: %s", job.name, text))
        try:
            async with self._slots, self.store.lock(job.name) as got:
                if not got:
                    raise JobBusy(f"{job.name} is running elsewhere (another node or command holds its lock)")
                state = await self.store.load(job.name) or JobState(job.name, owner_id=job.owner_id)
                if scheduled and self._seconds_until(state.next_run_at) > 1.0:
                    self.states[job.name] = state
                    return state  # another node ran it while we waited for its lock
                return await self._run_locked(job, state, say)
        except DatabaseError as exc:  # the state store itself is down: try again later, say why
            log.warning("sync %s: database trouble: %s", job.name, exc)
            state = replace(self.states.get(job.name) or JobState(job.name, owner_id=job.owner_id),
                            status="error", error=f"database unavailable: {exc}")
            state.next_run_at = self.now() + timedelta(seconds=job.retry_min)
            self.states[job.name] = state
            return state

    async def _run_locked(self, job: Job, state: JobState, say: Progress) -> JobState:
        started, t0 = self.now(), trio.current_time()
        state = replace(state, status="running", last_run_at=started, node=self.node, owner_id=job.owner_id)
        self.states[job.name] = state
        await self.store.save(state)
        error: str | None = None
        summary = ""
        try:
            with trio.fail_after(job.timeout):
                summary = await job.run(say)
        except trio.TooSlowError:
            error = f"timed out after {job.timeout:g} s"
        except trio.Cancelled:  # shutdown or removal: say so in the state, then go on cancelling
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                state = replace(state, status="error", error="interrupted (server stopping or job removed)",
                                last_error_at=self.now(), duration_s=trio.current_time() - t0,
                                next_run_at=self.now() + timedelta(seconds=job.retry_min))
                self.states[job.name] = state
                with suppress(DatabaseError):
                    await self.store.save(state)
            raise
        except Exception as exc:  # a failing job must never take the scheduler down
            error = _in_words(exc)
            if not isinstance(exc, HamsrvError):
                log.exception("sync %s failed unexpectedly", job.name)
        finished = self.now()
        if error is None:
            state = replace(state, status="ok", last_ok_at=finished, failures=0, summary=summary or None)
            say(f"done: {summary}" if summary else "done")
        else:
            state = replace(state, status="error", error=error, last_error_at=finished,
                            failures=state.failures + 1)
            log.warning("sync %s failed: %s", job.name, error)
            say(f"failed: {error}")
        state.duration_s = round(trio.current_time() - t0, 3)
        # a success counts the interval from its start (a daily job stays daily); a retry waits from now
        state.next_run_at = (started if error is None else finished) + timedelta(
            seconds=job.delay_after(state.failures, self.rng))
        self.states[job.name] = state
        await self.store.save(state)
        return state

    # ---- health
    def _register_metrics(self, metrics: Registry) -> None:
        def per_job(read: Callable[[JobState], float | None]) -> Callable[[], dict[str, float]]:
            return lambda: {n: v for n, s in self.states.items() if (v := read(s)) is not None}

        def stamp(when: datetime | None) -> float | None:
            return when.timestamp() if when else None

        metrics.labelled_gauge("hamsrv_sync_ok", "1 when the job's last run succeeded, 0 when it failed",
                               "job", per_job(lambda s: None if s.status == "never" else float(s.failures == 0)))
        metrics.labelled_gauge("hamsrv_sync_failures", "Failed runs of the job since its last success",
                               "job", per_job(lambda s: float(s.failures)))
        metrics.labelled_gauge("hamsrv_sync_last_success_timestamp_seconds",
                               "Unix time of the job's last successful run", "job",
                               per_job(lambda s: stamp(s.last_ok_at)))
        metrics.labelled_gauge("hamsrv_sync_next_run_timestamp_seconds", "Unix time of the job's next run",
                               "job", per_job(lambda s: stamp(s.next_run_at)))
        metrics.labelled_gauge("hamsrv_sync_duration_seconds", "How long the job's last run took",
                               "job", per_job(lambda s: s.duration_s))
