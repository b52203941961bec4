"""ADIF import bench: synthetic QSOs end to end through the CLI's import path, beside raw binary COPY
of the same rows in the same run.

    python -m bench.ingest                 # 1,000,000 QSOs (embedded PostgreSQL unless HAMSRV_DATABASE_URL)
    python -m bench.ingest --rows 100000

End to end = read the ADI file -> parse -> normalise -> binary COPY into the staging table -> INSERT
with dedupe into `qsos` (its indexes and triggers), committed per batch. The baseline COPYs the
same rows, already parsed, normalised and encoded (untimed), straight into tables shaped like `qsos`:
once with no index at all, once with the same indexes. Results: bench/results/ingest.{json,md}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import trio

from bench import procstat
from hamsrv.db.database import Database
from hamsrv.ingest.cli import file_chunks, import_files
from hamsrv.ingest.copy import BatchMaker
from hamsrv.ingest.normalize import QSO_COLUMNS

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_BANDS = (("20M", "14.074"), ("40M", "7.074"), ("15M", "21.074"), ("10M", "28.074"), ("80M", "3.573"),
          ("17M", "18.100"), ("30M", "10.136"), ("12M", "24.915"))
_MODES = ("FT8", "CW", "SSB", "RTTY", "FT4")
_PREFIXES = ("K", "W", "N", "DL", "G", "JA", "VK", "PY", "EA", "F", "I", "ON", "SP", "OK", "UA")


def synthetic_records(count: int, seed: int = 1) -> Iterator[bytes]:
    """`count` distinct QSOs as ADI records (no header): 10 fields each, a plausible mix of calls,
    bands and modes, one minute apart, so none is a duplicate of another."""
    rnd = random.Random(seed)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for i in range(count):
        call = (f"{rnd.choice(_PREFIXES)}{rnd.randrange(10)}"
                f"{''.join(rnd.choice(letters) for _ in range(rnd.randrange(1, 4)))}")
        band, freq = _BANDS[rnd.randrange(len(_BANDS))]
        mode = _MODES[rnd.randrange(len(_MODES))]
        minute = i  # one QSO a minute from 2000-01-01: unique start minutes
        day, rest = divmod(minute, 1440)
        year = 2000 + day // 336
        month = 1 + (day // 28) % 12
        date = f"{year:04d}{month:02d}{1 + day % 28:02d}"
        time_on = f"{rest // 60:02d}{rest % 60:02d}{rnd.randrange(60):02d}"
        fields = (("CALL", call), ("QSO_DATE", date), ("TIME_ON", time_on), ("BAND", band), ("MODE", mode),
                  ("FREQ", freq), ("RST_SENT", "599" if mode == "CW" else "59"), ("RST_RCVD", "57"),
                  ("GRIDSQUARE", "FN31pr"), ("NAME", rnd.choice(("John", "Anna", "Taro", "Jose"))))
        yield b"".join(b"<%s:%d>%s " % (k.encode(), len(v), v.encode()) for k, v in fields) + b"<EOR>\n"


def write_synthetic_adi(path: Path, count: int, seed: int = 1) -> int:
    """Write a synthetic ADI file; returns its size in bytes."""
    with open(path, "wb") as out:
        out.write(b"hamsrv synthetic log\n<ADIF_VER:5>3.1.6 <PROGRAMID:6>hamsrv <EOH>\n")
        batch = []
        for record in synthetic_records(count, seed):
            batch.append(record)
            if len(batch) == 10_000:
                out.write(b"".join(batch))
                batch = []
        out.write(b"".join(batch))
    return path.stat().st_size


def _encode_copy_file(adi: Path, out: Path, owner_id: int) -> int:
    """The same rows, parsed, normalised and encoded for binary COPY, one COPY stream per batch
    (untimed preparation of the baseline). Returns the number of rows."""
    maker = BatchMaker(owner_id, batch_records=50_000)
    rows = 0
    with open(adi, "rb") as source, open(out, "wb") as sink:
        def drain() -> None:
            nonlocal rows
            for batch in maker.batches():
                if batch.rows:
                    sink.write(len(batch.data).to_bytes(8, "big") + batch.data)
                    rows += batch.rows
        while data := source.read(1 << 20):
            maker.feed(data)
            drain()
        maker.close()
        drain()
    return rows


async def _raw_copy(db: Database, copy_file: Path, table: str) -> float:
    """Seconds to COPY every stream of `copy_file` into `table`, in one transaction."""
    columns = ", ".join(("owner_id", *QSO_COLUMNS))
    async with db.connection() as conn:
        started = time.perf_counter()
        async with conn.transaction():
            with open(copy_file, "rb") as handle:  # noqa: ASYNC230 - sequential local reads
                while head := handle.read(8):
                    data = handle.read(int.from_bytes(head, "big"))
                    async with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                        await copy.write(data)
        return time.perf_counter() - started


def _reset_peak_rss() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM starts again from VmRSS


async def run(rows: int, work: Path, database_url: str | None) -> dict[str, Any]:
    adi = work / "synthetic.adi"
    size = write_synthetic_adi(adi, rows)
    db = await Database.open(database_url, work, pool_size=4)
    try:
        owner = f"BENCH{random.randrange(10**6)}"
        owner_id = (await db.fetch("INSERT INTO users (callsign) VALUES (%s) RETURNING id", [owner]))[0]["id"]
        with open(os.devnull, "w") as quiet:
            _reset_peak_rss()
            cpu_before = procstat.cpu_seconds([os.getpid()])
            started = time.perf_counter()
            [result] = await import_files(db, owner, [adi], out=quiet)
            seconds = time.perf_counter() - started
            cpu = procstat.cpu_used(cpu_before, procstat.cpu_seconds([os.getpid()]))
            peak_rss = procstat.peak_rss_mb([os.getpid()])
        assert result.inserted == rows, f"inserted {result.inserted} of {rows}"
        parse_started = time.perf_counter()
        maker = BatchMaker(owner_id)
        async for data in file_chunks(adi):
            maker.feed(data)
            list(maker.batches())
        maker.close()
        list(maker.batches())
        cpu_only = time.perf_counter() - parse_started
        copy_file = work / "rows.copy"
        assert _encode_copy_file(adi, copy_file, owner_id) == rows
        baselines = {}
        for name, like in (("copy_no_indexes", "INCLUDING DEFAULTS"),
                           ("copy_same_indexes", "INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING INDEXES")):
            table = f"bench_{name}_{random.randrange(10**6)}"
            await db.execute(f"CREATE TABLE {table} (LIKE qsos {like})")
            try:
                baselines[name] = await _raw_copy(db, copy_file, table)
            finally:
                await db.execute(f"DROP TABLE {table}")
        await db.execute("DELETE FROM users WHERE callsign = %s", [owner])
    finally:
        await db.close()
    return {
        "rows": rows, "file_bytes": size, "host": platform.node(), "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "end_to_end": {"seconds": round(seconds, 3), "qsos_per_s": round(rows / seconds),
                       "peak_rss_mb": round(peak_rss, 1), "process_cpu_s": round(cpu, 2)},
        "parse_normalize_encode_only": {"seconds": round(cpu_only, 3), "qsos_per_s": round(rows / cpu_only)},
        **{name: {"seconds": round(s, 3), "qsos_per_s": round(rows / s)} for name, s in baselines.items()},
        "ratio_end_to_end_vs_copy_same_indexes": round(baselines["copy_same_indexes"] / seconds, 3),
        "target_qsos_per_s": 150_000, "target_rss_mb": 300,
    }


def markdown(report: dict[str, Any]) -> str:
    rows = report["rows"]
    lines = [f"# ADIF import bench: {rows:,} synthetic QSOs ({report['file_bytes'] / 1e6:.0f} MB ADI), "
             f"{report['cpus']} CPUs", "",
             "| path | seconds | QSOs/s | note |", "|---|---:|---:|---|"]
    e2e = report["end_to_end"]
    lines.append(f"| end to end (`hamsrv import`) | {e2e['seconds']} | {e2e['qsos_per_s']:,} | "
                 f"peak RSS {e2e['peak_rss_mb']} MB, process CPU {e2e['process_cpu_s']} s |")
    only = report["parse_normalize_encode_only"]
    lines.append(f"| parse + normalise + encode only (no database) | {only['seconds']} | "
                 f"{only['qsos_per_s']:,} | one Python thread |")
    for name, note in (("copy_no_indexes", "baseline: raw binary COPY, table without indexes"),
                       ("copy_same_indexes", "baseline: raw binary COPY, same indexes as `qsos`")):
        lines.append(f"| {name} | {report[name]['seconds']} | {report[name]['qsos_per_s']:,} | {note} |")
    lines += ["", f"End to end reaches {report['ratio_end_to_end_vs_copy_same_indexes']:.0%} of raw COPY into "
              f"an indexed table. Target: {report['target_qsos_per_s']:,} QSOs/s with RSS < "
              f"{report['target_rss_mb']} MB.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hamsrv-bench-ingest-") as tmp:
        report = trio.run(run, args.rows, Path(tmp), os.environ.get("HAMSRV_DATABASE_URL"))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ingest.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "ingest.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
