"""ADIF import bench: synthetic QSOs end to end through the CLI's import path, beside raw binary COPY
of the same rows in the same run.

    python -m bench.ingest                 # 3 rounds of 1,000,000 QSOs (embedded PostgreSQL unless HAMSRV_DATABASE_URL)
    python -m bench.ingest --rows 100000 --rounds 1

End to end = read the ADI file -> parse -> normalise -> encode -> binary COPY into `qsos` (its indexes,
dedupe checks and trigger) into an empty logbook, committed per batch. The baselines COPY the same rows,
already parsed, normalised and encoded (untimed), into plain tables shaped like `qsos`: once with no
index at all, once with the same indexes. Each round runs every path in turn; the report gives every
round and the medians. Results: bench/results/ingest.{json,md,png}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import trio

from bench import procstat
from hamsrv.db.database import Database
from hamsrv.ingest.cli import import_files
from hamsrv.ingest.copy import DEFAULT_BATCH_RECORDS, Batch, BatchMaker
from hamsrv.ingest.jobs import CHUNK_BYTES
from hamsrv.model import QSO_COLUMNS

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


def _batches_of(adi: Path, owner_id: int, batch_records: int = DEFAULT_BATCH_RECORDS) -> Iterator[Batch]:
    """The import's CPU half alone: the file through BatchMaker, no database."""
    maker = BatchMaker(owner_id, batch_records=batch_records)
    with open(adi, "rb") as source:
        while data := source.read(CHUNK_BYTES):
            maker.feed(data)
            yield from maker.batches()
    maker.close()
    yield from maker.batches()


def _encode_copy_file(adi: Path, out: Path, owner_id: int) -> int:
    """The same rows, parsed, normalised and encoded for binary COPY, one COPY stream per batch
    (untimed preparation of the baseline). Returns the number of rows."""
    rows = 0
    with open(out, "wb") as sink:
        for batch in _batches_of(adi, owner_id, batch_records=50_000):
            if batch.rows:
                sink.write(len(batch.data).to_bytes(8, "big") + batch.data)
                rows += batch.rows
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


async def _new_owner(db: Database) -> tuple[str, int]:
    call = f"BENCH{random.randrange(10**6)}"
    return call, (await db.fetch("INSERT INTO users (callsign) VALUES (%s) RETURNING id", [call]))[0]["id"]


async def _end_to_end(db: Database, adi: Path, rows: int) -> dict[str, float]:
    """One import through the CLI's path into an owner with an empty logbook; the owner and its QSOs
    are deleted afterwards (untimed), so every round starts from the same table."""
    owner, _ = await _new_owner(db)
    with open(os.devnull, "w") as quiet:
        _reset_peak_rss()
        cpu_before = procstat.cpu_seconds([os.getpid()])
        started = time.perf_counter()
        [result] = await import_files(db, owner, [adi], out=quiet)
        seconds = time.perf_counter() - started
        cpu = procstat.cpu_used(cpu_before, procstat.cpu_seconds([os.getpid()]))
    assert result.inserted == rows, f"inserted {result.inserted} of {rows}"
    await db.execute("DELETE FROM users WHERE callsign = %s", [owner])
    await db.execute("VACUUM qsos")
    return {"seconds": seconds, "peak_rss_mb": procstat.peak_rss_mb([os.getpid()]), "process_cpu_s": cpu}


def _parse_only(adi: Path, owner_id: int) -> float:
    started = time.perf_counter()
    for _ in _batches_of(adi, owner_id):
        pass
    return time.perf_counter() - started


_BASELINES = {"copy_no_indexes": "INCLUDING DEFAULTS",
              "copy_same_indexes": "INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING INDEXES"}
PATHS = ("end_to_end", "parse_normalize_encode_only", *_BASELINES)


async def run(rows: int, rounds: int, work: Path, database_url: str | None) -> dict[str, Any]:
    """`rounds` rounds of every path in turn, so that each ratio compares runs made minutes apart on
    this shared machine; the report gives each round and the medians."""
    adi = work / "synthetic.adi"
    size = write_synthetic_adi(adi, rows)
    db = await Database.open(database_url, work, pool_size=4)
    seconds: dict[str, list[float]] = {path: [] for path in PATHS}
    end_to_end: list[dict[str, float]] = []
    try:
        owner, owner_id = await _new_owner(db)
        copy_file = work / "rows.copy"
        assert _encode_copy_file(adi, copy_file, owner_id) == rows
        for _ in range(rounds):
            end_to_end.append(await _end_to_end(db, adi, rows))
            seconds["end_to_end"].append(end_to_end[-1]["seconds"])
            seconds["parse_normalize_encode_only"].append(_parse_only(adi, owner_id))
            for name, like in _BASELINES.items():
                table = f"bench_{name}_{random.randrange(10**6)}"
                await db.execute(f"CREATE TABLE {table} (LIKE qsos {like})")
                try:
                    seconds[name].append(await _raw_copy(db, copy_file, table))
                finally:
                    await db.execute(f"DROP TABLE {table}")
        await db.execute("DELETE FROM users WHERE callsign = %s", [owner])
    finally:
        await db.close()
    ratios = [copy / e2e for copy, e2e in zip(seconds["copy_same_indexes"], seconds["end_to_end"], strict=True)]
    return {
        "rows": rows, "rounds": rounds, "file_bytes": size, "host": platform.node(), "cpus": os.cpu_count(),
        "python": platform.python_version(),
        **{path: {"seconds": [round(s, 3) for s in runs], "qsos_per_s": [round(rows / s) for s in runs],
                  "median_qsos_per_s": round(rows / statistics.median(runs))} for path, runs in seconds.items()},
        "end_to_end_peak_rss_mb": round(max(r["peak_rss_mb"] for r in end_to_end), 1),
        "end_to_end_process_cpu_s": round(statistics.median(r["process_cpu_s"] for r in end_to_end), 2),
        "ratio_end_to_end_vs_copy_same_indexes": [round(r, 3) for r in ratios],
        "median_ratio": round(statistics.median(ratios), 3),
        "target_qsos_per_s": 150_000, "target_rss_mb": 300,
    }


_NOTES = {
    "end_to_end": "read ADI, parse, normalise, COPY into `qsos`, commit per batch",
    "parse_normalize_encode_only": "no database",
    "copy_no_indexes": "baseline: raw binary COPY of the same rows, table without indexes",
    "copy_same_indexes": "baseline: raw binary COPY of the same rows, same indexes as `qsos`",
}


def markdown(report: dict[str, Any]) -> str:
    rows, rounds = report["rows"], report["rounds"]
    lines = [f"# ADIF import bench: {rows:,} synthetic QSOs ({report['file_bytes'] / 1e6:.0f} MB ADI), "
             f"{report['cpus']} CPUs, {rounds} rounds", "",
             "| path | median QSOs/s | each round | note |", "|---|---:|---|---|"]
    for path in PATHS:
        each = ", ".join(f"{r:,}" for r in report[path]["qsos_per_s"])
        lines.append(f"| {path} | {report[path]['median_qsos_per_s']:,} | {each} | {_NOTES[path]} |")
    ratios = ", ".join(f"{r:.0%}" for r in report["ratio_end_to_end_vs_copy_same_indexes"])
    lines += ["", f"End to end reaches {report['median_ratio']:.0%} (median; rounds: {ratios}) of raw COPY into "
              f"an indexed table in the same round. Peak RSS {report['end_to_end_peak_rss_mb']} MB, process CPU "
              f"{report['end_to_end_process_cpu_s']} s. Target: {report['target_qsos_per_s']:,} QSOs/s with RSS < "
              f"{report['target_rss_mb']} MB.", ""]
    return "\n".join(lines)


def write_chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(8, 3.2))
    names = list(reversed(PATHS))
    ax.barh(names, [report[p]["median_qsos_per_s"] for p in names], color="#4a7ab5")
    for y, name in enumerate(names):
        ax.plot(report[name]["qsos_per_s"], [y] * report["rounds"], "k.", label="round" if y == 0 else None)
    ax.axvline(report["target_qsos_per_s"], color="#c0392b", linestyle="--", label="target")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value / 1000:.0f}k"))
    ax.set_xlabel("QSOs/s (bar: median)")
    ax.set_title(f"ADIF import, {report['rows']:,} QSOs")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hamsrv-bench-ingest-") as tmp:
        report = trio.run(run, args.rows, args.rounds, Path(tmp), os.environ.get("HAMSRV_DATABASE_URL"))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ingest.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "ingest.md").write_text(markdown(report))
    write_chart(report, args.out / "ingest.png")
    print(markdown(report))


if __name__ == "__main__":
    main()
