"""`hamsrv import` and `hamsrv export`: the same import pipeline as the server's jobs, run in-process
against the database, with a plain-text progress line on stderr."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TextIO

import trio

from hamsrv import cty
from hamsrv.cliargs import config_from_args, with_db
from hamsrv.db.database import Database, Row
from hamsrv.errors import HamsrvError, InputError
from hamsrv.identity.tokens import get_user
from hamsrv.ingest.adif import SNIFF_BYTES, looks_like_adif
from hamsrv.ingest.export import FORMATS, export_qsos
from hamsrv.ingest.jobs import CHUNK_BYTES, RECORD_COUNTS, ImportResult, import_stream
from hamsrv.ingest.normalize import use_entities

Command = Callable[..., argparse.ArgumentParser]
SHOWN_REJECTS = 10


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    """The file in CHUNK_BYTES pieces, read in a worker thread."""
    with open(path, "rb") as handle:  # noqa: ASYNC230 - reads below go through a thread
        while data := await trio.to_thread.run_sync(handle.read, CHUNK_BYTES):
            yield data


class ProgressLine:
    """`\\r`-updated progress on a terminal-ish stream, at most ten times a second."""

    def __init__(self, name: str, size: int, out: TextIO):
        self.name, self.size, self.out = name, size, out
        self.started = self.shown = time.monotonic()

    def __call__(self, result: ImportResult) -> None:
        now = time.monotonic()
        if now - self.shown < 0.1:
            return
        self.shown = now
        percent = 100 * result.bytes_done / self.size if self.size else 100
        rate = result.records_read / max(now - self.started, 1e-9)
        self.out.write(f"\r{self.name}: {percent:5.1f}%  {result.records_read:,} records  {rate:,.0f}/s ")
        self.out.flush()

    def done(self, result: ImportResult) -> None:
        seconds = time.monotonic() - self.started
        self.out.write(f"\r{self.name}: {summary_line(result)} in {seconds:.1f} s"
                       f" ({result.records_read / max(seconds, 1e-9):,.0f} records/s)\n")
        for reject in result.rejects[:SHOWN_REJECTS]:
            self.out.write(f"  rejected record {reject['record']} (byte {reject['offset']}): "
                           f"{reject['field'] or 'record'}: {reject['reason']}\n")
        if result.rejected > SHOWN_REJECTS:
            self.out.write(f"  ... and {result.rejected - SHOWN_REJECTS} more rejected\n")
        for duplicate in result.duplicate_records[:SHOWN_REJECTS]:
            self.out.write(f"  duplicate record {duplicate['record']}: {duplicate['call']} {duplicate['start']} "
                           f"{duplicate['band'] or '-'} {duplicate['mode'] or '-'}\n")
        if result.duplicates > SHOWN_REJECTS:
            self.out.write(f"  ... and {result.duplicates - SHOWN_REJECTS} more duplicates\n")
        for warning in result.warnings[:SHOWN_REJECTS]:  # what the HTTP job summary lists as warnings
            where = f"record {warning['record']}" if warning.get("record") else f"byte {warning['offset']}"
            self.out.write(f"  warning, {where}: {warning['reason']}\n")
        if result.warning_count > SHOWN_REJECTS:
            self.out.write(f"  ... and {result.warning_count - SHOWN_REJECTS} more warnings\n")
        self.out.flush()


def check_adif_file(path: Path) -> None:
    """Refuse what is not ADIF at all before importing anything, as the HTTP upload does."""
    if not path.is_file():
        raise HamsrvError(f"no such file: {path}")
    try:
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError as exc:
        raise HamsrvError(f"cannot read {path}: {exc.strerror}") from None
    if not head:
        raise InputError(f"{path}: the file is empty")
    if not looks_like_adif(head):
        raise InputError(f"{path}: not an ADIF file (no ADIF tag like <CALL:4>, <EOR>, <EOH> or <ADX> element "
                         f"in the first {SNIFF_BYTES // 1024} KiB)")


def failed(result: ImportResult) -> bool:
    """Nothing stored because of errors: every record rejected, or no record found at all."""
    stored = result.inserted + result.duplicates + result.merged + result.up_to_date
    return stored == 0 and (result.rejected > 0 or result.records_read == 0)


def summary_line(result: ImportResult) -> str:
    return (f"read {result.records_read:,}, inserted {result.inserted:,}, duplicates {result.duplicates:,}, "
            f"merged {result.merged:,}, up to date {result.up_to_date:,}, rejected {result.rejected:,}")


async def owner_of(db: Database, callsign: str) -> Row:
    user = await get_user(db, callsign)
    if user is None:
        raise InputError(f"no user {callsign.upper()} (create it with: hamsrv user add {callsign.upper()})")
    return user


async def import_files(db: Database, owner: str, paths: list[Path], *, merge: bool = False,
                       out: TextIO | None = None) -> list[ImportResult]:
    """Import each file in turn (progress on `out`, default stderr); returns one result per file."""
    out = out or sys.stderr
    user = await owner_of(db, owner)
    results = []
    for path in paths:
        progress = ProgressLine(path.name, path.stat().st_size, out)
        result = await import_stream(db, user["id"], file_chunks(path), merge=merge, on_progress=progress)
        progress.done(result)
        results.append(result)
    if len(results) > 1:
        total = ImportResult(**{k: sum(getattr(r, k) for r in results) for k in RECORD_COUNTS})
        out.write(f"total: {summary_line(total)}\n")
    return results


async def export_to(db: Database, owner: str, out: IO[bytes], *, fmt: str = "adi",
                    since: datetime | None = None) -> None:
    user = await owner_of(db, owner)
    async for chunk in export_qsos(db, user["id"], user["callsign"], fmt=fmt, since=since):
        out.write(chunk)
    out.flush()


def _date(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def add_commands(command: Command) -> None:
    """Add `import` and `export` to the hamsrv command (see hamsrv.cli.build_parser)."""

    def cmd_import(args: argparse.Namespace) -> int:
        for path in args.files:
            check_adif_file(path)

        async def action(db: Database) -> list[ImportResult]:
            return await import_files(db, args.owner, args.files, merge=args.merge)

        config = config_from_args(args)
        use_entities(cty.load(config.data_dir))  # the server's cty.dat fills DXCC and country, as there
        results = trio.run(with_db, config, action)
        return 1 if any(failed(r) for r in results) else 0

    def cmd_export(args: argparse.Namespace) -> int:
        async def action(db: Database) -> None:
            if args.output is None:
                await export_to(db, args.owner, sys.stdout.buffer, fmt=args.format, since=args.since)
                return
            with open(args.output, "wb") as handle:  # noqa: ASYNC230 - a local file, written in order
                await export_to(db, args.owner, handle, fmt=args.format, since=args.since)

        try:
            trio.run(with_db, config_from_args(args), action)
        except BrokenPipeError:  # `hamsrv export ... | head`: the reader had enough
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's exit flush quiet
            return 1
        return 0

    p = command("import", cmd_import, "import ADIF files (ADI or ADX) into a user's logbook")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--owner", required=True, help="callsign of the user whose logbook receives the QSOs")
    p.add_argument("--merge", action="store_true",
                   help="update the QSL fields of QSOs already logged instead of skipping them")
    p = command("export", cmd_export, "export a user's logbook as ADIF")
    p.add_argument("--owner", required=True, help="callsign of the user")
    p.add_argument("--format", choices=FORMATS, default="adi")
    p.add_argument("--since", type=_date, help="only QSOs from this date (YYYY-MM-DD) on")
    p.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
