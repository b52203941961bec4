"""FCC ULS callbook (daily): the weekly l_amat.zip swapped in whole, then the daily diffs in order.

The weekly file (~1.5 M licences) streams from the HTTP response through the zip reader into COPY, into
temporary tables of the fields we keep, on one connection; PostgreSQL joins EN, AM and HD into `callbook_new`,
builds its indexes, and a short transaction renames it into place. Lookups read the old table until that
rename, so they wait only for the rename itself (milliseconds, measured in bench/callbook.py).
Anything wrong (HTTP error, a download cut short after its retries, a corrupt zip, wrong columns)
raises before the swap: the previous callbook stays and the error is recorded by the scheduler.

Both files are fetched conditionally (ETag / Last-Modified, kept in sync_state.details): an unchanged
weekly file is not downloaded again, and a daily file is applied once. A download that breaks off is
resumed with a Range request (or, when the server ignores Range, re-read and the known part skipped).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any

import httpx

from hamsrv.config import Config
from hamsrv.db import sync_state
from hamsrv.db.database import Database, Row, execute_on, fetch_on
from hamsrv.db.errors import translated
from hamsrv.db.trio_pg import TrioConnection
from hamsrv.sync import fetch
from hamsrv.sync.scheduler import Job, Progress, SyncError
from hamsrv.sync.uls import COLUMNS, CopyRows, UlsFormatError, record_type
from hamsrv.sync.zipstream import ZipError, ZipStream

AUTHORITY = "FCC"
FULL_PATH = "/complete/l_amat.zip"
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/x-zip", "application/octet-stream")
RETRIES = 3  # resumptions of a download that breaks off
DAILY_MAX_BYTES = 64 << 20  # a daily file is a few MB at most; it is read into memory
PROGRESS_EVERY = 20_000_000  # bytes between two progress lines
RAW_TABLES = {"EN": "fcc_en", "AM": "fcc_am", "HD": "fcc_hd"}

CALLBOOK_COLUMNS = ("callsign", "usi", "name", "entity_name", "first_name", "middle_initial", "last_name",
                    "email", "street", "city", "state", "zip", "frn", "operator_class", "license_status",
                    "grant_date", "expire_date", "previous_call")


def _date(field: str) -> str:
    """mm/dd/yyyy to a date in SQL, NULL for anything else (never an error that would stop the import)."""
    return (f"CASE WHEN {field} ~ '^(0[1-9]|1[0-2])/(0[1-9]|[12][0-9]|3[01])/[1-9][0-9]{{3}}$' THEN "
            f"make_date(substr({field}, 7, 4)::int, substr({field}, 1, 2)::int, 1)"
            f" + (substr({field}, 4, 2)::int - 1) END")


# One row per callsign from the raw tables: the licensee entity (EN type L), the amateur data (AM) and
# the licence header (HD). When a callsign has several licences (an old one cancelled, a new one
# granted), the active one wins, then the latest grant.
LICENCES = f"""
SELECT DISTINCT ON (h.callsign) h.callsign, h.usi,
       coalesce(nullif(concat_ws(' ', e.first_name, e.middle_initial, e.last_name), ''), e.entity_name) AS name,
       e.entity_name, e.first_name, e.middle_initial, e.last_name, e.email, e.street, e.city, e.state, e.zip,
       e.frn, a.operator_class, h.license_status, {_date('h.grant_date')} AS grant_date,
       {_date('h.expire_date')} AS expire_date, a.previous_call
FROM fcc_hd h
LEFT JOIN fcc_en e ON e.usi = h.usi AND coalesce(e.entity_type, 'L') = 'L'
LEFT JOIN fcc_am a ON a.usi = h.usi
WHERE h.callsign <> ''
ORDER BY h.callsign, (h.license_status = 'A') DESC NULLS LAST, {_date('h.grant_date')} DESC NULLS LAST,
         h.usi DESC
"""


def raw_table_sql(kind: str) -> str:
    columns = ", ".join(f"{name} {'bigint' if name == 'usi' else 'text'}" for _, name in COLUMNS[kind])
    return f"CREATE TEMPORARY TABLE {RAW_TABLES[kind]} ({columns})"


def copy_sql(kind: str) -> str:
    columns = ", ".join(name for _, name in COLUMNS[kind])
    return f"COPY {RAW_TABLES[kind]} ({columns}) FROM STDIN (NULL '', ENCODING 'LATIN1')"


# ---- loading a zip into the raw tables

async def _events(stream: ZipStream, chunks: AsyncIterator[bytes]) -> AsyncGenerator[tuple[str, str, bytes], None]:
    async for chunk in chunks:
        for event in stream.feed(chunk):
            yield event
    stream.close()


async def load_zip(conn: TrioConnection, chunks: AsyncIterator[bytes], progress: Progress,
                   *, require: tuple[str, ...] = ("EN", "AM", "HD")) -> dict[str, int]:
    """Stream a ULS zip into the temporary tables fcc_en, fcc_am, fcc_hd; returns lines per file."""
    with translated():
        for kind, table in RAW_TABLES.items():
            await conn.execute(f"DROP TABLE IF EXISTS pg_temp.{table}")
            await conn.execute(raw_table_sql(kind))
    counts: dict[str, int] = {}
    stream = ZipStream(wanted=lambda name: record_type(name) is not None)
    events = _events(stream, chunks)
    try:
        async for kind, name, _ in events:
            if kind != "start":
                continue
            record = record_type(name)
            assert record is not None
            rows = CopyRows(record)
            with translated():
                async with conn.cursor().copy(copy_sql(record)) as copy:
                    async for kind, _, payload in events:
                        out = rows.feed(payload) if kind == "data" else rows.close()
                        if out:
                            await copy.write(out)
                        if kind == "end":
                            break
            counts[record] = counts.get(record, 0) + rows.lines - rows.bad
            skipped = f" ({rows.bad} odd lines skipped, first {rows.first_bad})" if rows.bad else ""
            progress(f"{name}: {rows.lines - rows.bad:,} records{skipped}")
    except ZipError as exc:
        raise SyncError(str(exc)) from None
    except UlsFormatError as exc:
        raise SyncError(str(exc)) from None
    finally:
        await events.aclose()
    missing = [r for r in require if r not in counts]
    if missing:
        raise SyncError(f"the zip holds no {', '.join(r + '.dat' for r in missing)}")
    return counts


async def drop_raw(conn: TrioConnection) -> None:
    with translated():
        for table in RAW_TABLES.values():
            await conn.execute(f"DROP TABLE IF EXISTS pg_temp.{table}")


# ---- weekly: build and swap

async def build_and_swap(conn: TrioConnection, progress: Progress) -> int:
    """callbook_new from the raw tables, indexed, then renamed into place in one short transaction."""
    cols = ", ".join(CALLBOOK_COLUMNS)
    with translated():
        await conn.execute("DROP TABLE IF EXISTS callbook_new")
        await conn.execute("CREATE TABLE callbook_new (LIKE callbook INCLUDING DEFAULTS)")
        for table in RAW_TABLES.values():
            await conn.execute(f"ANALYZE {table}")
        cur = await conn.execute(f"INSERT INTO callbook_new ({cols}) SELECT {cols} FROM ({LICENCES}) l")
        licences = cur.rowcount
        if licences == 0:
            raise SyncError("the weekly file holds no licences: the callbook was kept")
        progress(f"{licences:,} licences joined; indexing")
        await conn.execute("ALTER TABLE callbook_new ADD CONSTRAINT callbook_new_pkey PRIMARY KEY (callsign)")
        await conn.execute("CREATE INDEX callbook_new_usi ON callbook_new (usi)")
        await conn.execute("ANALYZE callbook_new")
        await swap(conn)
    progress("new callbook swapped in")
    return licences


async def swap(conn: TrioConnection) -> None:
    """Rename callbook_new into place. Lookups queue behind these renames only for their duration;
    lock_timeout keeps a long query on the old table from holding lookups behind us for long."""
    async with conn.transaction():
        await conn.execute("SET LOCAL lock_timeout = '5s'")
        for statement in ("ALTER TABLE callbook RENAME TO callbook_old",
                          "ALTER INDEX callbook_pkey RENAME TO callbook_old_pkey",
                          "ALTER INDEX callbook_usi RENAME TO callbook_old_usi",
                          "ALTER TABLE callbook_new RENAME TO callbook",
                          "ALTER INDEX callbook_new_pkey RENAME TO callbook_pkey",
                          "ALTER INDEX callbook_new_usi RENAME TO callbook_usi",
                          "DROP TABLE callbook_old"):
            await conn.execute(statement)


# ---- daily: apply on the live table

async def apply_daily(conn: TrioConnection) -> int:
    """Upsert the licences of a daily file (raw tables loaded). A licence with a new callsign drops its
    old row; a cancelled old licence never overwrites the active licence holding the same callsign."""
    cols = ", ".join(CALLBOOK_COLUMNS)
    kept = ("name", "entity_name", "first_name", "middle_initial", "last_name", "email", "street", "city",
            "state", "zip", "frn", "operator_class", "previous_call")  # EN/AM may be absent from a diff
    replaced = ("usi", "license_status", "grant_date", "expire_date")
    updates = ", ".join([f"{c} = coalesce(EXCLUDED.{c}, callbook.{c})" for c in kept]
                        + [f"{c} = EXCLUDED.{c}" for c in replaced] + ["updated_at = now()"])
    with translated():
        async with conn.transaction():
            await conn.execute("DROP TABLE IF EXISTS pg_temp.fcc_rows")
            for table in RAW_TABLES.values():
                await conn.execute(f"ANALYZE {table}")
            await conn.execute(f"CREATE TEMPORARY TABLE fcc_rows AS {LICENCES}")
            await conn.execute("DELETE FROM callbook c USING fcc_rows r WHERE c.usi = r.usi"
                               " AND c.callsign <> r.callsign")
            cur = await conn.execute(
                f"INSERT INTO callbook ({cols}) SELECT {cols} FROM fcc_rows ON CONFLICT (callsign) DO UPDATE"
                f" SET {updates} WHERE callbook.usi = EXCLUDED.usi OR EXCLUDED.license_status = 'A'"
                " OR callbook.license_status IS DISTINCT FROM 'A'")
            await conn.execute("DROP TABLE fcc_rows")
            return cur.rowcount


# ---- downloads

async def resumable(http: httpx.AsyncClient, url: str, first: fetch.Answer, progress: Progress
                    ) -> AsyncIterator[bytes]:
    """The body of `first`; when the connection breaks off, ask for the rest (Range) up to RETRIES times."""
    received, shown = 0, 0
    validator = first.response.headers.get("ETag") or first.response.headers.get("Last-Modified")
    answer: fetch.Answer | None = first
    attempt = 0
    while True:
        try:
            if answer is not None:
                async for chunk in fetch.chunks(answer, AUTHORITY):
                    received += len(chunk)
                    if received - shown >= PROGRESS_EVERY:
                        shown = received
                        progress(f"downloaded {fetch.megabytes(received)}")
                    yield chunk
                return
            headers = {"Range": f"bytes={received}-"}
            if validator:
                headers["If-Range"] = validator
            async with fetch.get(http, url, authority=AUTHORITY, kinds=ZIP_TYPES, what="a zip file",
                                 headers=headers) as again:
                now = again.response.headers.get("ETag") or again.response.headers.get("Last-Modified")
                if validator and now and now != validator:
                    raise SyncError(f"{AUTHORITY} changed l_amat.zip during the download (the next run starts over)")
                skip = received if again.response.status_code == 200 else 0  # Range ignored: read past it
                progress(f"resuming at {fetch.megabytes(received)}"
                         + (" (no Range support: reading it again)" if skip else ""))
                async for chunk in fetch.chunks(again, AUTHORITY):
                    if skip:
                        drop = min(skip, len(chunk))
                        chunk, skip = chunk[drop:], skip - drop
                        if not chunk:
                            continue
                    received += len(chunk)
                    yield chunk
                return
        except fetch.DownloadBroken as exc:
            attempt += 1
            answer = None
            if attempt > RETRIES:
                raise SyncError(f"{exc} (gave up after {RETRIES} resumptions)") from None
            progress(str(exc))


async def sync_full(http: httpx.AsyncClient, db: Database, base: str, details: dict[str, Any],
                    progress: Progress) -> int | None:
    """Import the weekly file when it changed; the number of licences, or None when unchanged."""
    url = base + FULL_PATH
    async with fetch.get(http, url, authority=AUTHORITY, kinds=ZIP_TYPES, what="a zip file",
                         validators=details.get("full")) as answer:
        if answer.not_modified:
            progress("weekly l_amat.zip: not modified")
            return None
        size = answer.response.headers.get("Content-Length")
        progress("downloading l_amat.zip" + (f" ({fetch.megabytes(int(size))})" if size and size.isdecimal() else ""))
        async with db.connection() as conn:
            try:
                await load_zip(conn, resumable(http, url, answer, progress), progress)
                licences = await build_and_swap(conn, progress)
            finally:
                await drop_raw(conn)
                await execute_on(conn, "DROP TABLE IF EXISTS callbook_new")
        details["full"] = answer.validators
        details["daily"] = {}  # every daily file newer than this weekly one applies again
        return licences


async def sync_daily(http: httpx.AsyncClient, db: Database, base: str, details: dict[str, Any],
                     progress: Progress) -> tuple[int, int]:
    """Apply each daily file that is new, oldest first, only those newer than the weekly file.
    Returns (files applied, licences changed)."""
    applied: dict[str, dict[str, str]] = details.setdefault("daily", {})
    weekly = _when((details.get("full") or {}).get("last_modified"))
    fresh: list[tuple[float, str, bytes, fetch.Validators]] = []
    for day in DAYS:
        path = f"/daily/l_am_{day}.zip"
        try:
            async with fetch.get(http, base + path, authority=AUTHORITY, kinds=ZIP_TYPES, what="a zip file",
                                 validators=applied.get(day)) as answer:
                if answer.not_modified:
                    continue
                data = await fetch.read_all(answer, AUTHORITY, DAILY_MAX_BYTES)
                validators = answer.validators
        except SyncError as exc:
            if " answered 404" in str(exc):
                continue  # not published this week
            raise
        when = _when(validators.get("last_modified"))
        if weekly is not None and when is not None and when <= weekly:
            applied[day] = validators  # older than the weekly file: already in it
            continue
        fresh.append((when or 0.0, day, data, validators))
    changed = 0
    for _, day, data, validators in sorted(fresh):
        async with db.connection() as conn:
            try:
                try:
                    await load_zip(conn, _one(data), progress, require=("HD",))
                except SyncError as exc:
                    raise SyncError(f"daily l_am_{day}.zip: {exc}") from None
                n = await apply_daily(conn)
            finally:
                await drop_raw(conn)
        progress(f"daily l_am_{day}.zip: {n:,} licences changed")
        changed += n
        applied[day] = validators
    return len(fresh), changed


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _when(http_date: str | None) -> float | None:
    if not http_date:
        return None
    try:
        return parsedate_to_datetime(http_date).timestamp()
    except (TypeError, ValueError):
        return None


async def sync(base_url: str, db: Database, progress: Progress) -> str:
    base = base_url.rstrip("/")
    details = await sync_state.details(db, "fcc")
    async with fetch.client() as http:
        licences = await sync_full(http, db, base, details, progress)
        await sync_state.save_details(db, "fcc", details)
        try:
            files, changed = await sync_daily(http, db, base, details, progress)
        finally:
            await sync_state.save_details(db, "fcc", details)  # the daily files applied so far stay applied
    weekly = "weekly file unchanged" if licences is None else f"{licences:,} licences from the weekly file"
    return f"{weekly}; {files} daily file{'s' if files != 1 else ''} applied ({changed:,} licences changed)"


def make_job_for(base_url: str, db: Database) -> Job:
    return Job("fcc", partial(sync, base_url, db), interval=86400, timeout=2 * 3600, retry_min=900,
               retry_max=6 * 3600)


def make_job(config: Config, db: Database) -> Job:
    return make_job_for(config.fcc_url, db)


# ---- lookups

CLASSES = {"E": "Extra", "A": "Advanced", "G": "General", "P": "Technician Plus", "T": "Technician", "N": "Novice"}
STATUSES = {"A": "active", "C": "canceled", "E": "expired", "T": "terminated", "X": "termination pending"}


async def lookup(db: Database, callsign: str) -> Row | None:
    """What GET /api/callbook/{call} shows. Never the email: it is selected nowhere outside the FCC-email code."""
    async with db.connection() as conn:
        rows = await fetch_on(conn, "SELECT callsign, name, operator_class, license_status, grant_date,"
                                    " expire_date, city, state, updated_at FROM callbook WHERE callsign = %s",
                              [callsign])
    return rows[0] if rows else None
