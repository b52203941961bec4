"""The job runner against a real database: a job from queued to done, an interrupted run resumed
exactly once, two runners sharing jobs, failures, the cap on stored rejects, and the named duplicates."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from bench.ingest import synthetic_records
from hamsrv.db.database import Database
from hamsrv.db.import_jobs import add_chunk, create_job, finish_upload, get_job
from hamsrv.errors import DatabaseError, HamsrvError
from hamsrv.ingest.jobs import (
    LISTED_DUPLICATES,
    MAX_STORED_PROBLEMS,
    JobRunner,
    import_stream,
)

ROW_KEY = "SELECT call, start_at, band, mode, freq, extra FROM qsos WHERE owner_id = %s ORDER BY call, start_at, band, mode"


async def new_owner(db: Database, call: str) -> int:
    row = await db.fetchrow("INSERT INTO users (callsign) VALUES (%s) RETURNING id", [call])
    assert row is not None
    return int(row["id"])


async def queue(db: Database, owner_id: int, data: bytes, *, chunk: int = 4096, key: str | None = None,
                merge: bool = False) -> int:
    async with db.transaction() as conn:
        job_id, created = await create_job(conn, owner_id, filename="f.adi", options={"merge": merge},
                                           idempotency_key=key)
        assert created
        for seq, start in enumerate(range(0, len(data), chunk)):
            await add_chunk(conn, job_id, seq, data[start:start + chunk])
        await finish_upload(conn, job_id, len(data), "adi")
    return job_id


async def wait_status(db: Database, owner_id: int, job_id: int, statuses: tuple[str, ...]) -> dict[str, Any]:
    with trio.fail_after(30):
        while True:
            job = await get_job(db, owner_id, job_id)
            assert job is not None
            if job["status"] in statuses:
                return job
            await trio.sleep(0.02)


SYNTHETIC = b"".join(synthetic_records(3000))


async def test_job_runs_to_done_with_progress_events(db: Database, nursery: trio.Nursery):
    owner = await new_owner(db, "W1AW")
    runner = JobRunner(db, batch_records=1000, poll_interval=0.05)
    await nursery.start(runner.run)
    events = []
    with runner.subscribe(owner) as progress:
        job_id = await queue(db, owner, SYNTHETIC + b"<CALL:2>K1<EOR>")
        runner.wake()
        async for event in progress:
            events.append(event)
            if event["status"] == "done":
                break
    job = await get_job(db, owner, job_id)
    assert job is not None
    assert (job["records_read"], job["inserted"], job["duplicates"], job["rejected"]) == (3001, 3000, 0, 1)
    assert job["rejects"] == [{"record": 3001, "offset": len(SYNTHETIC), "field": "QSO_DATE",
                               "reason": "missing"}]
    assert job["bytes_done"] == job["size_bytes"] and job["format"] == "adi"
    assert [e["records_read"] for e in events if e["status"] == "running"] == [0, 1000, 2000, 3000, 3001]
    assert events[-1]["inserted"] == 3000
    assert await db.fetchrow("SELECT count(*) AS n FROM import_chunks WHERE job_id = %s", [job_id]) == {"n": 0}


async def test_interrupted_run_resumes_after_the_committed_records(db: Database):
    resumed, reference = await new_owner(db, "W1AW"), await new_owner(db, "K1ABC")
    data = SYNTHETIC + b"".join(synthetic_records(500))  # 500 duplicates at the end
    job_id = await queue(db, resumed, data)
    runner = JobRunner(db, batch_records=700, poll_interval=0.05)
    async with trio.open_nursery() as nursery:
        with runner.subscribe(resumed) as progress:
            await nursery.start(runner.run)
            async for event in progress:
                if event["records_read"] >= 700:
                    nursery.cancel_scope.cancel()  # mid-import: the batch in flight rolls back
                    break
    partial = await get_job(db, resumed, job_id)
    assert partial is not None and partial["status"] == "running"
    assert 0 < partial["records_read"] < 3500 and partial["records_read"] % 700 == 0
    async with trio.open_nursery() as nursery:
        await nursery.start(JobRunner(db, batch_records=700, poll_interval=0.05).run)
        done = await wait_status(db, resumed, job_id, ("done",))
        nursery.cancel_scope.cancel()
    assert (done["records_read"], done["inserted"], done["duplicates"], done["rejected"]) == (3500, 3000, 500, 0)
    async with trio.open_nursery() as nursery:
        await nursery.start(JobRunner(db).run)
        other = await wait_status(db, reference, await queue(db, reference, data), ("done",))
        nursery.cancel_scope.cancel()
    assert (other["inserted"], other["duplicates"]) == (3000, 500)
    assert await db.fetch(ROW_KEY, [resumed]) == await db.fetch(ROW_KEY, [reference])
    # the named duplicates survive the interruption too
    assert [d["record"] for d in done["duplicate_records"]] == list(range(3001, 3001 + LISTED_DUPLICATES))
    assert done["duplicate_records"] == other["duplicate_records"], ([d["record"] for d in done["duplicate_records"]], [d["record"] for d in other["duplicate_records"]])


async def test_two_runners_run_each_job_once(db: Database, nursery: trio.Nursery):
    owner = await new_owner(db, "W1AW")
    jobs = [await queue(db, owner, b"".join(synthetic_records(400, seed=n))) for n in range(4)]
    for _ in range(2):
        await nursery.start(JobRunner(db, batch_records=100, poll_interval=0.05, concurrency=2).run)
    results = [await wait_status(db, owner, job_id, ("done", "failed")) for job_id in jobs]
    assert sum(r["inserted"] for r in results) + sum(r["duplicates"] for r in results) == 1600
    assert all(r["records_read"] == 400 and r["status"] == "done" for r in results)
    assert await db.fetchrow("SELECT count(*) AS n FROM qsos") == {"n": sum(r["inserted"] for r in results)}


async def test_a_file_without_records_fails_with_the_reason(db: Database, nursery: trio.Nursery):
    owner = await new_owner(db, "W1AW")
    await nursery.start(JobRunner(db, poll_interval=0.05).run)
    job_id = await queue(db, owner, b'<?xml version="1.0"?>\n<LOG><RECORD/></LOG>\n')
    job = await wait_status(db, owner, job_id, ("done", "failed"))
    assert job["status"] == "failed" and "root element is <LOG>" in job["error"]
    assert await db.fetchrow("SELECT count(*) AS n FROM import_chunks WHERE job_id = %s", [job_id]) == {"n": 1}


async def test_stored_rejects_are_capped_but_counted(db: Database, nursery: trio.Nursery):
    owner = await new_owner(db, "W1AW")
    await nursery.start(JobRunner(db, batch_records=300, poll_interval=0.05).run)
    bad = MAX_STORED_PROBLEMS + 50
    record = b"<CALL:4>W1AW<QSO_DATE:8>20240101<EOR>\n"
    job_id = await queue(db, owner, record * bad, chunk=1 << 20)
    job = await wait_status(db, owner, job_id, ("done", "failed"))
    assert (job["status"], job["rejected"], len(job["rejects"])) == ("done", bad, MAX_STORED_PROBLEMS)
    assert job["rejects"][-1] == {"record": MAX_STORED_PROBLEMS, "offset": len(record) * (MAX_STORED_PROBLEMS - 1),
                                  "field": "TIME_ON", "reason": "missing"}


async def test_errors_on_either_side_come_out_as_themselves_not_as_exception_groups(db: Database) -> None:
    """A job must see DatabaseError (then it resumes later), not an ExceptionGroup (then it failed for good)."""
    async def input_then_database_gone():
        yield b"".join(synthetic_records(10))
        raise DatabaseError("the database went away")

    owner = await new_owner(db, "W1AW")
    with pytest.raises(DatabaseError, match="went away"):
        await import_stream(db, owner, input_then_database_gone(), batch_records=5)

    async def some_records():
        yield b"".join(synthetic_records(3))

    with pytest.raises(HamsrvError, match="no longer exists"):
        await import_stream(db, 424242, some_records())


async def test_every_record_counts_once_and_the_first_duplicates_are_named(db: Database, nursery: trio.Nursery):
    """QSOs already stored, QSOs repeated in the file (in one batch and across batches), QSL updates and
    rejects, shuffled over several batches: inserted + duplicates + merged + up_to_date + rejected =
    records read, and the first duplicates are named by record number, plain and with merge (issue 14)."""
    batch = 16
    qsos = list(synthetic_records(60, seed=7))
    stored, new = range(30), range(30, 60)
    qsl = [q.replace(b"<EOR>", b"<LOTW_QSL_RCVD:1>Y <EOR>") for q in qsos]
    entries: list[tuple[int | None, bytes]] = [(None, b"<CALL:2>K1<EOR>\n")] * 2  # (QSO, record); None: reject
    entries += [(q, qsos[q]) for q in (*stored[:10], *new, *new[:10])] + [(q, qsl[q]) for q in stored[10:15]]
    random.Random(5).shuffle(entries)
    await nursery.start(JobRunner(db, batch_records=batch, poll_interval=0.05).run)

    for merge in (False, True):
        owner = await new_owner(db, "K1MRG" if merge else "W1AW")
        await import_stream(db, owner, chunks(b"".join(qsos[q] for q in stored)))
        job = await wait_status(db, owner, await queue(db, owner, b"".join(e[1] for e in entries), merge=merge),
                                ("done", "failed"))
        expected = {"inserted": 0, "duplicates": 0, "merged": 0, "up_to_date": 0, "rejected": 0}
        duplicate_records, seen = [], set(stored)
        for first in range(0, len(entries), batch):
            in_batch = entries[first:first + batch]
            for number, (q, record) in enumerate(in_batch, first + 1):
                if q is None:
                    outcome = "rejected"
                elif merge:  # the last record of a QSO in a batch is the one merged
                    later = any(other == q for other, _ in in_batch[number - first:])
                    outcome = ("duplicates" if later else "inserted" if q not in seen
                               else "merged" if record == qsl[q] else "up_to_date")
                else:
                    outcome = "duplicates" if q in seen else "inserted"
                    seen.add(q)
                expected[outcome] += 1
                if outcome == "duplicates":
                    duplicate_records.append(number)
            seen.update(q for q, _ in in_batch if q is not None)
        assert job["status"] == "done" and job["records_read"] == len(entries) == sum(expected.values())
        assert {k: job[k] for k in expected} == expected
        assert expected["duplicates"] > 0 and (not merge or expected["merged"] and expected["up_to_date"])
        assert [d["record"] for d in job["duplicate_records"]] == duplicate_records[:LISTED_DUPLICATES]
        for named in job["duplicate_records"]:
            assert qsos[entries[named["record"] - 1][0]].startswith(b"<CALL:%d>%s " % (
                len(named["call"]), named["call"].encode()))


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_duplicates_past_the_batchs_first_pages_are_named_too(db: Database):
    """The listing looks at a batch's first pages first (a re-upload's duplicates come first): one
    duplicate there and the rest far behind must still give the first ones in file order."""
    owner = await new_owner(db, "W1AW")
    qsos = list(synthetic_records(2000, seed=11))
    await import_stream(db, owner, chunks(b"".join([qsos[1], *qsos[1500:1600]])))
    result = await import_stream(db, owner, chunks(b"".join(qsos)), batch_records=5000)
    assert (result.inserted, result.duplicates) == (1899, 101)
    assert [d["record"] for d in result.duplicate_records] == [2, *range(1501, 1501 + LISTED_DUPLICATES - 1)]
