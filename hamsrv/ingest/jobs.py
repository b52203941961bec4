"""Import jobs: the pipeline that stores an ADIF stream, and the service that runs durable uploads.

`import_stream` is the one code path for every import (API jobs, the CLI, the bench): a worker thread
parses, normalises and encodes batch N+1 while the database stores batch N; each batch is committed in
one transaction together with the caller's progress (`checkpoint`). For a job the progress is the
number of the last stored record, so a run that died (SIGKILL, power loss) resumes after exactly
the committed records and the end result equals an uninterrupted import.

`JobRunner` claims queued jobs (and jobs left `running` by a dead process) with FOR UPDATE SKIP LOCKED
plus a session advisory lock held for the whole run: PostgreSQL drops the lock when the holder's
connection dies, which is how a restarted server knows a `running` job is orphaned.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import trio

from hamsrv.db.bulk import Stored, prepare_connection, store_rows
from hamsrv.db.database import Database, Row, execute_on, fetch_on, json_value, jsonb
from hamsrv.db.errors import RefusedData, translated
from hamsrv.db.trio_pg import TrioConnection
from hamsrv.errors import DatabaseError, HamsrvError
from hamsrv.ingest.copy import DEFAULT_BATCH_RECORDS, Batch, BatchMaker

log = logging.getLogger(__name__)

MAX_STORED_PROBLEMS = 1000  # rejects (and warnings) kept per job; the counts go on past it
CHUNK_BYTES = 1 << 20       # upload chunk stored per import_chunks row, and the CLI's read size
_LOCK_BASE = 0x696D706F << 32  # "impo": advisory lock key = base + job id
_COUNTERS = ("records_read", "inserted", "duplicates", "merged", "rejected", "warning_count")


class ImportFailed(HamsrvError):
    """The input cannot be imported at all (the message says why); not worth retrying."""


@dataclass
class ImportResult:
    """Running totals of one import; `records_read` = inserted + duplicates + merged + rejected."""

    records_read: int = 0
    inserted: int = 0
    duplicates: int = 0
    merged: int = 0
    rejected: int = 0
    warning_count: int = 0
    bytes_done: int = 0
    rejects: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def kept_problems(self, batch: Batch) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The batch's rejects and warnings that still fit under the stored cap."""
        return (batch.rejects[:max(0, MAX_STORED_PROBLEMS - len(self.rejects))],
                batch.warnings[:max(0, MAX_STORED_PROBLEMS - len(self.warnings))])

    def add(self, batch: Batch, stored: Stored) -> None:
        """Count the batch in."""
        new_rejects, new_warnings = self.kept_problems(batch)
        self.rejects.extend(new_rejects)
        self.warnings.extend(new_warnings)
        self.records_read = batch.last_record
        self.inserted += stored.inserted
        self.duplicates += stored.duplicates
        self.merged += stored.merged
        self.rejected += len(batch.rejects)
        self.warning_count += len(batch.warnings)
        self.bytes_done = max(self.bytes_done, batch.end_offset)

    def counters(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in _COUNTERS}


Checkpoint = Callable[[TrioConnection, Batch, Stored, ImportResult], Awaitable[None]]


def _feed(maker: BatchMaker, data: bytes) -> list[Batch]:
    maker.feed(data)
    return list(maker.batches())


def _close(maker: BatchMaker) -> list[Batch]:
    maker.close()
    return list(maker.batches())


async def _make_batches(maker: BatchMaker, chunks: AsyncIterator[bytes],
                        send: trio.MemorySendChannel[Batch]) -> HamsrvError | None:
    """The CPU half, in a worker thread so the trio loop stays free and the database works meanwhile.
    Returns, like _store_batches, the error that stopped it (e.g. the database holding the upload went away)."""
    try:
        async with send:
            async for data in chunks:
                for batch in await trio.to_thread.run_sync(_feed, maker, data):
                    await send.send(batch)
            for batch in await trio.to_thread.run_sync(_close, maker):
                await send.send(batch)
    except HamsrvError as exc:
        return exc
    return None


async def import_stream(db: Database, owner_id: int, chunks: AsyncIterator[bytes], *, merge: bool = False,
                        result: ImportResult | None = None, batch_records: int = DEFAULT_BATCH_RECORDS,
                        checkpoint: Checkpoint | None = None,
                        on_progress: Callable[[ImportResult], None] | None = None) -> ImportResult:
    """Store the ADIF bytes of `chunks` as QSOs of `owner_id`. `result` carries the totals of an
    interrupted earlier run: its `records_read` records are skipped. Raises ImportFailed when the
    database refuses the data itself, DatabaseError when the database is unreachable."""
    result = result or ImportResult()
    maker = BatchMaker(owner_id, batch_records=batch_records, skip_through=result.records_read)
    send, receive = trio.open_memory_channel[Batch](1)
    failures: list[HamsrvError] = []

    async def run_half(half: Awaitable[HamsrvError | None], scope: trio.CancelScope) -> None:
        failure = await half
        if failure is not None:  # stop the other half; raised below, outside the nursery's ExceptionGroup
            failures.append(failure)
            scope.cancel()

    async with db.connection() as conn, trio.open_nursery() as nursery:
        nursery.start_soon(run_half, _make_batches(maker, chunks, send), nursery.cancel_scope)
        await run_half(_store_batches(conn, owner_id, receive, result, merge, checkpoint, on_progress),
                       nursery.cancel_scope)
    if failures:
        raise failures[0]
    return result


async def _store_batches(conn: TrioConnection, owner_id: int, receive: trio.MemoryReceiveChannel[Batch],
                         result: ImportResult, merge: bool, checkpoint: Checkpoint | None,
                         on_progress: Callable[[ImportResult], None] | None) -> HamsrvError | None:
    """The database half: one transaction per batch. Returns (not raises: the caller's nursery would
    wrap it in an ExceptionGroup) the error that stopped it."""
    batch: Batch | None = None
    try:
        with translated():
            await prepare_connection(conn)
            async with receive:
                async for batch in receive:
                    async with conn.transaction():
                        stored = await store_rows(conn, owner_id, batch.data, batch.rows, merge=merge,
                                                  starts=batch.starts)
                        if checkpoint is not None:
                            await checkpoint(conn, batch, stored, result)
                    result.add(batch, stored)
                    if on_progress is not None:
                        on_progress(result)
    except RefusedData as exc:
        where = f" in records {batch.first_record}-{batch.last_record}" if batch else ""
        return ImportFailed(f"the database refused the data{where}: {exc}")
    except HamsrvError as exc:  # DatabaseError, or the owner deleted meanwhile
        return exc
    return None


# ------------------------------------------------------------------------------------- durable jobs
_SUMMARY_FIELDS = ("id", "status", "filename", "format", "options", "size_bytes", "bytes_done",
                   *_COUNTERS, "error", "created_at", "started_at", "finished_at")


def job_summary(job: Row, *, details: bool = False) -> dict[str, Any]:
    """A job as JSON; `details` adds the stored rejects and warnings."""
    body = {name: json_value(job.get(name)) for name in _SUMMARY_FIELDS}
    if details:
        body["rejects"] = job["rejects"]
        body["warnings"] = job["warnings"]
    return body


async def create_job(conn: TrioConnection, owner_id: int, *, filename: str | None, options: dict[str, Any],
                     idempotency_key: str | None) -> tuple[int, bool]:
    """(job id, created). With an idempotency key already used by this owner, the existing job's id
    and False; a concurrent request with the same key waits for the first one to commit."""
    rows = await fetch_on(conn, "INSERT INTO import_jobs (owner_id, filename, options, idempotency_key)"
                                " VALUES (%s, %s, %s, %s) ON CONFLICT (owner_id, idempotency_key) DO NOTHING"
                                " RETURNING id", [owner_id, filename, jsonb(options), idempotency_key])
    if rows:
        return rows[0]["id"], True
    existing = await fetch_on(conn, "SELECT id FROM import_jobs WHERE owner_id = %s AND idempotency_key = %s",
                              [owner_id, idempotency_key])
    return existing[0]["id"], False


async def add_chunk(conn: TrioConnection, job_id: int, seq: int, data: bytes) -> None:
    await execute_on(conn, "INSERT INTO import_chunks (job_id, seq, data) VALUES (%s, %s, %s)", [job_id, seq, data])


async def finish_upload(conn: TrioConnection, job_id: int, size: int, fmt: str) -> None:
    await execute_on(conn, "UPDATE import_jobs SET size_bytes = %s, format = %s WHERE id = %s", [size, fmt, job_id])


async def get_job(db: Database, owner_id: int, job_id: int) -> Row | None:
    """The job, or None when it does not exist or belongs to someone else (404 either way)."""
    return await db.fetchrow("SELECT * FROM import_jobs WHERE id = %s AND owner_id = %s", [job_id, owner_id])


async def list_jobs(db: Database, owner_id: int, *, active_only: bool = False, limit: int = 50) -> list[Row]:
    where = " AND status IN ('queued', 'running')" if active_only else ""
    return await db.fetch(f"SELECT * FROM import_jobs WHERE owner_id = %s{where} ORDER BY id DESC LIMIT %s",
                          [owner_id, limit])


_CHECKPOINT = (
    "UPDATE import_jobs SET records_read = %(last)s, bytes_done = greatest(bytes_done, %(bytes)s),"
    " inserted = inserted + %(inserted)s, duplicates = duplicates + %(duplicates)s,"
    " merged = merged + %(merged)s, rejected = rejected + %(rejected)s,"
    " warning_count = warning_count + %(warned)s, rejects = rejects || %(rejects)s,"
    " warnings = warnings || %(warnings)s"
    " WHERE id = %(id)s AND records_read = %(expected)s")


class JobRunner:
    """Runs import jobs: up to `concurrency` at a time, woken by `wake()` or every `poll_interval`
    seconds (jobs queued by another node). Progress goes to `subscribe()`rs of the job's owner."""

    def __init__(self, db: Database, *, concurrency: int = 2, poll_interval: float = 5.0,
                 batch_records: int = DEFAULT_BATCH_RECORDS, retry_delay: float = 5.0):
        self.db = db
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.batch_records = batch_records
        self.retry_delay = retry_delay
        self._wake = trio.Event()
        self._subscribers: dict[int, set[trio.MemorySendChannel[dict[str, Any]]]] = {}

    def wake(self) -> None:
        """A job was queued: look now instead of at the next poll."""
        self._wake.set()
        self._wake = trio.Event()

    @contextmanager
    def subscribe(self, owner_id: int, buffer: int = 64) -> Iterator[trio.MemoryReceiveChannel[dict[str, Any]]]:
        """Progress events of `owner_id`'s jobs. A subscriber that falls `buffer` events behind misses
        some: each event is a complete snapshot, so the next one catches it up."""
        send, receive = trio.open_memory_channel[dict[str, Any]](buffer)
        self._subscribers.setdefault(owner_id, set()).add(send)
        try:
            yield receive
        finally:
            subscribers = self._subscribers.get(owner_id, set())
            subscribers.discard(send)
            if not subscribers:
                self._subscribers.pop(owner_id, None)

    def _publish(self, owner_id: int, event: dict[str, Any]) -> None:
        for send in list(self._subscribers.get(owner_id, ())):
            try:
                send.send_nowait(event)
            except trio.WouldBlock:
                pass
            except trio.BrokenResourceError:
                self._subscribers.get(owner_id, set()).discard(send)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(self.concurrency):
                nursery.start_soon(self._worker)
            task_status.started()

    async def _worker(self) -> None:
        while True:
            woken = self._wake
            try:
                ran = await self._run_one()
            except DatabaseError as exc:
                log.warning("import jobs: %s; retrying in %g s", exc, self.retry_delay)
                await trio.sleep(self.retry_delay)
                continue
            if not ran:
                with trio.move_on_after(self.poll_interval):
                    await woken.wait()

    async def _run_one(self) -> bool:
        """Claim one job and run it; False when there was none to claim."""
        async with self.db.connection() as lock_conn:
            job = await self._claim(lock_conn)
            if job is None:
                return False
            try:
                await self._run(job)
            finally:
                # a dead connection has released the lock already
                with trio.CancelScope(shield=True), suppress(DatabaseError):
                    await execute_on(lock_conn, "SELECT pg_advisory_unlock(%s)", [_LOCK_BASE + job["id"]])
        return True

    async def _claim(self, conn: TrioConnection) -> Row | None:
        with translated():
            async with conn.transaction():
                candidates = await fetch_on(
                    conn, "SELECT id FROM import_jobs WHERE status IN ('queued', 'running')"
                          " ORDER BY id LIMIT 50 FOR UPDATE SKIP LOCKED")
                for candidate in candidates:
                    [locked] = await fetch_on(conn, "SELECT pg_try_advisory_lock(%s) AS ok",
                                              [_LOCK_BASE + candidate["id"]])
                    if locked["ok"]:
                        rows = await fetch_on(
                            conn, "UPDATE import_jobs SET status = 'running',"
                                  " started_at = coalesce(started_at, now()) WHERE id = %s RETURNING *",
                            [candidate["id"]])
                        return rows[0]
        return None

    async def _chunks(self, job_id: int) -> AsyncIterator[bytes]:
        seq = 0
        while True:
            row = await self.db.fetchrow("SELECT data FROM import_chunks WHERE job_id = %s AND seq = %s",
                                         [job_id, seq])
            if row is None:
                return
            yield bytes(row["data"])
            seq += 1

    async def _run(self, job: Row) -> None:
        job_id, owner_id = job["id"], job["owner_id"]
        result = ImportResult(**{name: job[name] for name in _COUNTERS}, bytes_done=job["bytes_done"],
                              rejects=list(job["rejects"]), warnings=list(job["warnings"]))
        size = job["size_bytes"]

        async def checkpoint(conn: TrioConnection, batch: Batch, stored: Stored, before: ImportResult) -> None:
            rejects, warnings = before.kept_problems(batch)
            touched = await execute_on(conn, _CHECKPOINT, {
                "id": job_id, "expected": before.records_read, "last": batch.last_record,
                "bytes": size if batch.final else batch.end_offset, "inserted": stored.inserted,
                "duplicates": stored.duplicates, "merged": stored.merged, "rejected": len(batch.rejects),
                "warned": len(batch.warnings), "rejects": jsonb(rejects), "warnings": jsonb(warnings)})
            if touched != 1:  # another run stored these records: never count them twice
                raise DatabaseError(f"import job {job_id} was advanced by another runner")

        def progress(current: ImportResult) -> None:
            self._publish(owner_id, {"type": "progress", "id": job_id, "status": "running",
                                     **current.counters(), "bytes_done": current.bytes_done,
                                     "size_bytes": size})

        self._publish(owner_id, {"type": "progress", "id": job_id, "status": "running", **result.counters(),
                                 "bytes_done": result.bytes_done, "size_bytes": size})
        try:
            result = await import_stream(self.db, owner_id, self._chunks(job_id),
                                         merge=bool(job["options"].get("merge")), result=result,
                                         batch_records=self.batch_records, checkpoint=checkpoint,
                                         on_progress=progress)
        except ImportFailed as exc:
            await self._finish(job_id, owner_id, "failed", str(exc))
            return
        except DatabaseError:
            raise  # the database went away: the job stays `running` and is resumed later
        except Exception:  # a bug must not take the server down, nor be retried forever
            log.exception("import job %d failed", job_id)
            await self._finish(job_id, owner_id, "failed", "internal error (logged on the server)")
            return
        error = None
        if result.records_read == 0 and result.warnings:
            error = f"no records: {result.warnings[0]['reason']}"
        await self._finish(job_id, owner_id, "failed" if error else "done", error)

    async def _finish(self, job_id: int, owner_id: int, status: str, error: str | None) -> None:
        async with self.db.transaction() as conn:
            rows = await fetch_on(conn, "UPDATE import_jobs SET status = %s, error = %s, finished_at = now(),"
                                        " bytes_done = CASE WHEN %s = 'done' THEN size_bytes ELSE bytes_done END"
                                        " WHERE id = %s RETURNING *", [status, error, status, job_id])
            if status == "done":  # the QSOs hold the data now; a failed upload is kept for a look
                await execute_on(conn, "DELETE FROM import_chunks WHERE job_id = %s", [job_id])
        if rows:
            self._publish(owner_id, {"type": "progress", **job_summary(rows[0])})
