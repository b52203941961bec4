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
from hamsrv.db import callbook, sync_state
from hamsrv.db.database import Database
from hamsrv.db.errors import translated
from hamsrv.db.trio_pg import TrioConnection
from hamsrv.sync import fetch
from hamsrv.sync.scheduler import Job, Progress, SyncError
from hamsrv.sync.uls import CopyRows, UlsFormatError, record_type
from hamsrv.sync.zipstream import ZipError, ZipStream

AUTHORITY = "FCC"
FULL_PATH = "/complete/l_amat.zip"
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/x-zip", "application/octet-stream")
RETRIES = 3  # resumptions of a download that breaks off
DAILY_MAX_BYTES = 64 << 20  # a daily file is a few MB at most; it is read into memory
PROGRESS_EVERY = 20_000_000  # bytes between two progress lines
# ---- loading a zip into the raw tables

async def _events(stream: ZipStream, chunks: AsyncIterator[bytes]) -> AsyncGenerator[tuple[str, str, bytes], None]:
    async for chunk in chunks:
        for event in stream.feed(chunk):
            yield event
    stream.close()


async def load_zip(conn: TrioConnection, chunks: AsyncIterator[bytes], progress: Progress,
                   *, require: tuple[str, ...] = ("EN", "AM", "HD")) -> dict[str, int]:
    """Stream a ULS zip into the temporary tables fcc_en, fcc_am, fcc_hd; returns lines per file."""
    await callbook.new_raw_tables(conn)
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
                async with callbook.copy_raw(conn, record) as copy:
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


# ---- weekly: build and swap

async def build_and_swap(conn: TrioConnection, progress: Progress) -> int:
    """callbook_new from the raw tables, indexed, then renamed into place in one short transaction."""
    licences = await callbook.build_new(conn)
    if licences == 0:
        raise SyncError("the weekly file holds no licences: the callbook was kept")
    progress(f"{licences:,} licences joined; indexing")
    await callbook.index_and_swap(conn)
    progress("new callbook swapped in")
    return licences


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
                await callbook.drop_raw(conn)
                await callbook.drop_new(conn)
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
                n = await callbook.apply_daily(conn)
            finally:
                await callbook.drop_raw(conn)
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


# ---- lookups (the rows: db/callbook.py)

CLASSES = {"E": "Extra", "A": "Advanced", "G": "General", "P": "Technician Plus", "T": "Technician", "N": "Novice"}
STATUSES = {"A": "active", "C": "canceled", "E": "expired", "T": "terminated", "X": "termination pending"}
