"""Import jobs: the pipeline that stores an ADIF stream, and the service that runs durable uploads.

`import_stream` is the one code path for every import (API jobs, the CLI, the bench): a worker thread
parses, normalises and encodes batch N+1 while the database stores batch N; each batch is committed in
one transaction together with the caller's progress (`checkpoint`). For a job the progress is the
number of the last stored record, so a run that died (SIGKILL, power loss) resumes after exactly
the committed records and the end result equals an uninterrupted import.

`JobRunner` claims queued jobs (and jobs left `running` by a dead process, see db/import_jobs.py) and
runs them; a database error stops a run, never the runner: the job stays `running` and resumes later.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import trio

from hamsrv.db.bulk import Stored, prepare_connection, store_rows
from hamsrv.db.database import Database, Row, json_value
from hamsrv.db.errors import RefusedData, translated
from hamsrv.db.import_jobs import RECORD_COUNTS, claim_job, finish_job, read_chunk, save_progress, unlock_job
from hamsrv.db.trio_pg import TrioConnection
from hamsrv.errors import DatabaseError, HamsrvError
from hamsrv.ingest.copy import DEFAULT_BATCH_RECORDS, Batch, BatchMaker

log = logging.getLogger(__name__)

MAX_STORED_PROBLEMS = 1000  # rejects (and warnings) kept per job; the counts go on past it
LISTED_DUPLICATES = 20      # duplicates named per job (a re-upload is all duplicates: the count says it)
CHUNK_BYTES = 1 << 20       # upload chunk stored per import_chunks row, and the CLI's read size
UNLOCK_TIMEOUT = 5.0        # seconds the advisory unlock may take, even while shutting down
_COUNTERS = (*RECORD_COUNTS, "warning_count")


class ImportFailed(HamsrvError):
    """The input cannot be imported at all (the message says why); not worth retrying."""


@dataclass
class ImportResult:
    """Running totals of one import; `records_read` = inserted + duplicates + merged + up_to_date +
    rejected. A merge's duplicates are only records repeated later in the same batch (see db.bulk.Stored)."""

    records_read: int = 0
    inserted: int = 0
    duplicates: int = 0
    merged: int = 0
    up_to_date: int = 0
    rejected: int = 0
    warning_count: int = 0
    bytes_done: int = 0
    rejects: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    duplicate_records: list[dict[str, Any]] = field(default_factory=list)

    def kept_problems(self, batch: Batch) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The batch's rejects and warnings that still fit under the stored cap."""
        return (batch.rejects[:max(0, MAX_STORED_PROBLEMS - len(self.rejects))],
                batch.warnings[:max(0, MAX_STORED_PROBLEMS - len(self.warnings))])

    def kept_duplicates(self, batch: Batch, stored: Stored) -> list[dict[str, Any]]:
        """The batch's named duplicates that still fit in the list, with their record numbers."""
        room = max(0, LISTED_DUPLICATES - len(self.duplicate_records))
        return [{"record": batch.record_of_row(d.row), "call": d.call, "start": json_value(d.start_at),
                 "band": d.band, "mode": d.mode} for d in stored.duplicate_rows[:room]]

    def add(self, batch: Batch, stored: Stored) -> None:
        """Count the batch in."""
        new_rejects, new_warnings = self.kept_problems(batch)
        self.rejects.extend(new_rejects)
        self.warnings.extend(new_warnings)
        self.duplicate_records.extend(self.kept_duplicates(batch, stored))
        self.records_read = batch.last_record
        self.inserted += stored.inserted
        self.duplicates += stored.duplicates
        self.merged += stored.merged
        self.up_to_date += stored.up_to_date
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
                expect_new = False
                async for batch in receive:
                    async with conn.transaction():
                        stored = await store_rows(
                            conn, owner_id, batch.data, batch.rows, merge=merge, starts=batch.starts,
                            expect_new=expect_new, list_duplicates=LISTED_DUPLICATES - len(result.duplicate_records))
                        if checkpoint is not None:
                            await checkpoint(conn, batch, stored, result)
                    result.add(batch, stored)
                    if batch.rows:  # new QSOs come in runs: guess the next batch is like this one
                        expect_new = stored.inserted == batch.rows
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
                   *_COUNTERS, "duplicate_records", "error", "created_at", "started_at", "finished_at")


def job_summary(job: Row, *, details: bool = False) -> dict[str, Any]:
    """A job as JSON (with the few listed duplicates); `details` adds the stored rejects and warnings."""
    body = {name: json_value(job.get(name)) for name in _SUMMARY_FIELDS}
    if details:
        body["rejects"] = job["rejects"]
        body["warnings"] = job["warnings"]
    return body


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
        self._listeners: list[Callable[[int, dict[str, Any]], None]] = []

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

    def add_listener(self, listener: Callable[[int, dict[str, Any]], None]) -> None:
        """Call `listener(owner_id, event)` for every event of every user (the user bus takes them to
        the owner's pages on every worker; subscribers only hear this process's jobs)."""
        self._listeners.append(listener)

    def _publish(self, owner_id: int, event: dict[str, Any]) -> None:
        for listener in self._listeners:
            listener(owner_id, event)
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
            job = await claim_job(lock_conn)
            if job is None:
                return False
            try:
                await self._run(job)
            finally:
                # Shielded so a cancelled run still unlocks, with a deadline so a database that stops
                # answering cannot hold up shutdown; a connection left mid-query is closed by the pool,
                # and a dead connection has released the lock already.
                with trio.CancelScope(shield=True, deadline=trio.current_time() + UNLOCK_TIMEOUT), \
                        suppress(DatabaseError):
                    await unlock_job(lock_conn, job["id"])
        return True

    async def _chunks(self, job_id: int) -> AsyncIterator[bytes]:
        seq = 0
        while (data := await read_chunk(self.db, job_id, seq)) is not None:
            yield data
            seq += 1

    async def _run(self, job: Row) -> None:
        job_id, owner_id = job["id"], job["owner_id"]
        result = ImportResult(**{name: job[name] for name in _COUNTERS}, bytes_done=job["bytes_done"],
                              rejects=list(job["rejects"]), warnings=list(job["warnings"]),
                              duplicate_records=list(job["duplicate_records"]))
        size = job["size_bytes"]

        async def checkpoint(conn: TrioConnection, batch: Batch, stored: Stored, before: ImportResult) -> None:
            rejects, warnings = before.kept_problems(batch)
            saved = await save_progress(
                conn, job_id, expected=before.records_read, last=batch.last_record,
                bytes_done=size if batch.final else batch.end_offset, inserted=stored.inserted,
                duplicates=stored.duplicates, merged=stored.merged, up_to_date=stored.up_to_date,
                rejected=len(batch.rejects), warned=len(batch.warnings), rejects=rejects, warnings=warnings,
                duplicate_records=before.kept_duplicates(batch, stored))
            if not saved:  # another run stored these records: never count them twice
                raise DatabaseError(f"import job {job_id} was advanced by another runner")

        def progress(current: ImportResult) -> None:
            self._publish(owner_id, {"type": "progress", "id": job_id, "status": "running",
                                     **current.counters(), "bytes_done": current.bytes_done,
                                     "size_bytes": size, "duplicate_records": current.duplicate_records})

        progress(result)
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
        row = await finish_job(self.db, job_id, status, error)  # DatabaseError: the job resumes later
        if row is not None:
            self._publish(owner_id, {"type": "progress", **job_summary(row)})
