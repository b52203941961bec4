"""The SQL of import jobs: the upload's rows, claiming a job, its progress and its end.

A job is claimed with FOR UPDATE SKIP LOCKED plus a session advisory lock that its runner holds for the
whole run: PostgreSQL drops the lock when the holder's connection dies, which is how a restarted
server knows a `running` job is orphaned.
"""

from __future__ import annotations

from typing import Any

from hamsrv.db.database import Database, Row, execute_on, fetch_on, jsonb
from hamsrv.db.errors import translated
from hamsrv.db.trio_pg import TrioConnection

_LOCK_BASE = 0x696D706F << 32  # "impo": advisory lock key = base + job id


async def create_job(conn: TrioConnection, owner_id: int, *, filename: str | None, options: dict[str, Any],
                     idempotency_key: str | None, fingerprint: bytes | None = None) -> tuple[int, bool]:
    """(job id, created). With an idempotency key already used by this owner, the existing job's id
    and False (its `upload_sha256` is the `fingerprint` of the request that made it); a concurrent
    request with the same key waits for the first one to commit."""
    rows = await fetch_on(conn, "INSERT INTO import_jobs (owner_id, filename, options, idempotency_key,"
                                " upload_sha256) VALUES (%s, %s, %s, %s, %s)"
                                " ON CONFLICT (owner_id, idempotency_key) DO NOTHING RETURNING id",
                          [owner_id, filename, jsonb(options), idempotency_key, fingerprint])
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


async def claim_job(conn: TrioConnection) -> Row | None:
    """Mark the oldest job nobody runs as `running` and lock it for this connection's session."""
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


async def unlock_job(conn: TrioConnection, job_id: int) -> None:
    await execute_on(conn, "SELECT pg_advisory_unlock(%s)", [_LOCK_BASE + job_id])


async def read_chunk(db: Database, job_id: int, seq: int) -> bytes | None:
    row = await db.fetchrow("SELECT data FROM import_chunks WHERE job_id = %s AND seq = %s", [job_id, seq])
    return None if row is None else bytes(row["data"])


_CHECKPOINT = (
    "UPDATE import_jobs SET records_read = %(last)s, bytes_done = greatest(bytes_done, %(bytes)s),"
    " inserted = inserted + %(inserted)s, duplicates = duplicates + %(duplicates)s,"
    " merged = merged + %(merged)s, up_to_date = up_to_date + %(up_to_date)s,"
    " rejected = rejected + %(rejected)s, duplicate_records = duplicate_records || %(duplicate_records)s,"
    " warning_count = warning_count + %(warned)s, rejects = rejects || %(rejects)s,"
    " warnings = warnings || %(warnings)s"
    " WHERE id = %(id)s AND records_read = %(expected)s")


async def save_progress(conn: TrioConnection, job_id: int, *, expected: int, last: int, bytes_done: int,
                        inserted: int, duplicates: int, merged: int, up_to_date: int, rejected: int,
                        warned: int, rejects: list[dict[str, Any]], warnings: list[dict[str, Any]],
                        duplicate_records: list[dict[str, Any]]) -> bool:
    """Add a stored batch to the job's totals; False when the job is no longer at record `expected`
    (another run stored these records)."""
    touched = await execute_on(conn, _CHECKPOINT, {
        "id": job_id, "expected": expected, "last": last, "bytes": bytes_done, "inserted": inserted,
        "duplicates": duplicates, "merged": merged, "up_to_date": up_to_date, "rejected": rejected,
        "warned": warned, "rejects": jsonb(rejects), "warnings": jsonb(warnings),
        "duplicate_records": jsonb(duplicate_records)})
    return touched == 1


async def finish_job(db: Database, job_id: int, status: str, error: str | None) -> Row | None:
    """Mark the job done or failed; a done job's upload is dropped (the QSOs hold the data now; a
    failed upload is kept for a look)."""
    async with db.transaction() as conn:
        rows = await fetch_on(conn, "UPDATE import_jobs SET status = %s, error = %s, finished_at = now(),"
                                    " bytes_done = CASE WHEN %s = 'done' THEN size_bytes ELSE bytes_done END"
                                    " WHERE id = %s RETURNING *", [status, error, status, job_id])
        if status == "done":
            await execute_on(conn, "DELETE FROM import_chunks WHERE job_id = %s", [job_id])
    return rows[0] if rows else None


# How an import's records ended up (its columns in import_jobs); read = the sum of the others.
RECORD_COUNTS = ("records_read", "inserted", "duplicates", "merged", "up_to_date", "rejected")


async def totals_by_status(db: Database) -> list[Row]:
    """Per status: `jobs`, the sum of each of RECORD_COUNTS, and `rate` (records/s of the running jobs)."""
    return await db.fetch(
        "SELECT status, count(*) AS jobs, " + ", ".join(f"sum({o}) AS {o}" for o in RECORD_COUNTS) +
        ", sum(CASE WHEN status = 'running' THEN records_read / greatest(extract(epoch FROM now() - "
        "started_at), 0.001) ELSE 0 END) AS rate FROM import_jobs GROUP BY status")
