"""FCC callbook bench: a synthetic l_amat.zip of 1.5 M licences (the real size) through the whole sync,
with callbook lookups running all the while, beside a raw COPY of the same lines in the same run.

    python -m bench.callbook                        # 2 rounds of 1,500,000 licences
    python -m bench.callbook --licences 100000 --rounds 1

The zip (EN, AM, HD, and an HS history file the sync skips) is served by a separate `python -m
http.server` process, so its memory is not ours. End to end = `hamsrv.sync.fcc.sync`: download, stream
through the zip, split the fields and COPY them, join in PostgreSQL, index, swap. Meanwhile one task
looks up random callsigns on its own connection; the report gives their latency over the whole import
and in the index+swap window, and the longest gap between two answers. Baseline: COPY of the same
EN/AM/HD lines (unzipped beforehand, read from disk) as they are, one text column, no parsing, no join.
Peak RSS is this process's.
Results: bench/results/callbook.{json,md,png}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import trio

from bench import procstat
from hamsrv.db import callbook
from hamsrv.db.database import Database
from hamsrv.sync import fcc

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_PREFIXES = ("K", "W", "N", "A", "KA", "KB", "KC", "KD", "KE", "KF", "KG", "KI", "KJ", "KK", "WA", "WB", "N0")
_CLASSES = "EEGGGTTTTA"
_STATUS = "AAAAAAAAEC"
_CITIES = ("RIVERSIDE", "SPRINGFIELD", "OAKVILLE", "SUNNYVALE", "FAIRVIEW", "GREENVILLE")
_STATES = ("OH", "GA", "NJ", "CA", "TX", "NY", "WA", "FL")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def callsign(i: int) -> str:
    """A unique US-style callsign for each i (prefix, digit, 1-3 letter suffix)."""
    prefix = _PREFIXES[i % len(_PREFIXES)]
    i //= len(_PREFIXES)
    digit = str(i % 10)
    i //= 10
    suffix = ""
    for _ in range(3):
        suffix += _LETTERS[i % 26]
        i //= 26
    return prefix + digit + suffix + ("" if i == 0 else _LETTERS[i % 26])


def lines(kind: str, n: int, seed: int = 1) -> Any:
    rnd = random.Random(seed)
    for i in range(n):
        usi, call = 1_000_000 + i, callsign(i)
        if kind == "EN":
            first, last = rnd.choice(("LINDA", "JOHN", "ANA", "WEI", "OMAR")), rnd.choice(("MILLER", "LOPEZ", "SMITH"))
            yield (f"EN|{usi}|||{call}|L|L{usi:08d}|{last}, {first} Q|{first}|Q|{last}|||||{rnd.randrange(9999)} MAIN "
                   f"ST|{rnd.choice(_CITIES)}|{rnd.choice(_STATES)}|{rnd.randrange(10000, 99999)}|||000|"
                   f"{usi:010d}|I||||||\n")
        elif kind == "AM":
            yield f"AM|{usi}|||{call}|{rnd.choice(_CLASSES)}|D|7|||||||||P|\n"
        elif kind == "HD":
            yield (f"HD|{usi}|{usi:010d}||{call}|{rnd.choice(_STATUS)}|HA|0{rnd.randrange(1, 10)}/1{rnd.randrange(10)}"
                   f"/20{rnd.randrange(10, 24)}|04/27/2033|" + "|" * 34 + "05/09/2025|05/09/2025" + "|" * 15 + "\n")
        else:  # HS: licence history, skipped by the sync
            yield f"HS|{usi}||{call}|05/09/2025|LIISS\n"


def write_zip(path: Path, n: int) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for kind in ("AM", "EN", "HD", "HS"):
            with zf.open(f"{kind}.dat", "w") as out:
                batch: list[str] = []
                for line in lines(kind, n):
                    batch.append(line)
                    if len(batch) == 20000:
                        out.write("".join(batch).encode())
                        batch.clear()
                out.write("".join(batch).encode())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Lookups:
    """Random callbook lookups in a loop on their own connection; (start, seconds) of each."""

    def __init__(self, db: Database, n: int):
        self.db, self.n = db, n
        self.samples: list[tuple[float, float]] = []

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        rnd = random.Random(5)
        task_status.started()
        while True:
            call = callsign(rnd.randrange(self.n))
            started = time.perf_counter()
            await callbook.lookup(self.db, call)
            self.samples.append((started, time.perf_counter() - started))
            await trio.sleep(0.002)

    def summary(self, lo: float, hi: float) -> dict[str, Any]:
        picked = [s for s in self.samples if lo <= s[0] <= hi]
        if not picked:
            return {"lookups": 0}
        ms = sorted(1000 * d for _, d in picked)
        starts = [s for s, _ in picked]
        gaps = [1000 * (b - a) for a, b in zip(starts, starts[1:], strict=False)]
        return {"lookups": len(ms), "p50_ms": round(ms[len(ms) // 2], 2), "p99_ms": round(ms[int(len(ms) * 0.99)], 2),
                "max_ms": round(ms[-1], 2), "longest_gap_ms": round(max(gaps), 2) if gaps else None}


async def raw_copy(db: Database, files: dict[str, Path]) -> float:
    """Baseline: the same lines, already unzipped (files on disk), COPYed as they are (one text column
    each, no parsing) into temporary tables."""
    async with db.connection() as conn:
        for kind in files:
            await conn.execute(f"CREATE TEMPORARY TABLE bench_{kind} (line text)")
        started = time.perf_counter()
        for kind, path in files.items():
            async with conn.cursor().copy(f"COPY bench_{kind} (line) FROM STDIN (ENCODING 'LATIN1')") as c:
                with open(path, "rb") as handle:  # noqa: ASYNC230 - sequential local reads
                    while data := handle.read(1 << 20):
                        await c.write(data)
        seconds = time.perf_counter() - started
        for kind in files:
            await conn.execute(f"DROP TABLE bench_{kind}")
    return seconds


async def one_round(db: Database, url: str, n: int) -> dict[str, Any]:
    marks: dict[str, float] = {}

    def progress(text: str) -> None:
        now = time.perf_counter()
        if text.startswith("downloading"):
            marks["start"] = now
        elif text.startswith(("EN.dat", "AM.dat", "HD.dat")):
            marks["copied"] = now  # the last of the three
        elif "joined; indexing" in text:
            marks["joined"] = now
        elif text == "new callbook swapped in":
            marks["swapped"] = now

    await db.execute("DELETE FROM sync_state WHERE name = 'fcc'")  # no 304: a full import every round
    lookups = Lookups(db, n)
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    cpu_before = procstat.cpu_seconds([os.getpid()])
    async with trio.open_nursery() as nursery:
        await nursery.start(lookups.run)
        await trio.sleep(0.5)
        started = time.perf_counter()
        summary = await fcc.sync(url, db, progress)
        seconds = time.perf_counter() - started
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    cpu = procstat.cpu_used(cpu_before, procstat.cpu_seconds([os.getpid()]))
    rows = (await db.fetch("SELECT count(*) AS n FROM callbook"))[0]["n"]
    assert rows == n, f"{rows} licences in the callbook, expected {n} ({summary})"
    swap_lo, swap_hi = marks["joined"], marks["swapped"] + 0.2
    return {
        "seconds": round(seconds, 2), "licences_per_s": round(n / seconds),
        "download_and_copy_s": round(marks["copied"] - marks["start"], 2),
        "join_s": round(marks["joined"] - marks["copied"], 2),
        "index_swap_s": round(marks["swapped"] - marks["joined"], 2),
        "peak_rss_mb": procstat.peak_rss_mb([os.getpid()]), "process_cpu_s": round(cpu, 2),
        "lookups_whole_import": lookups.summary(started, started + seconds),
        "lookups_swap_window": lookups.summary(swap_lo, swap_hi),
        "lookups_before": lookups.summary(0, started),
    }


async def run(n: int, rounds: int, work: Path, database_url: str | None) -> dict[str, Any]:
    site = work / "site"
    (site / "complete").mkdir(parents=True)
    zpath = site / "complete" / "l_amat.zip"
    t0 = time.perf_counter()
    write_zip(zpath, n)
    made = time.perf_counter() - t0
    with zipfile.ZipFile(zpath) as zf:  # unzipped once for the baseline, never held in memory
        raw = {kind: Path(zf.extract(f"{kind}.dat", work / "raw")) for kind in ("EN", "AM", "HD")}
        unzipped = sum(i.file_size for i in zf.infolist())
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port),
                               "--directory", str(site)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = await Database.open(database_url, work, pool_size=4)
    results: list[dict[str, Any]] = []
    baseline: list[float] = []
    try:
        await trio.sleep(1.0)
        for _ in range(rounds):
            results.append(await one_round(db, f"http://127.0.0.1:{port}", n))
            baseline.append(await raw_copy(db, raw))
    finally:
        server.terminate()
        server.wait()
        await db.close()
    e2e = [r["seconds"] for r in results]
    return {
        "licences": n, "rounds": rounds, "zip_bytes": zpath.stat().st_size, "unzipped_bytes": unzipped,
        "zip_made_in_s": round(made, 1), "host": platform.node(), "cpus": os.cpu_count(),
        "python": platform.python_version(), "rounds_detail": results,
        "median_seconds": statistics.median(e2e), "median_licences_per_s": round(n / statistics.median(e2e)),
        "baseline_raw_copy_seconds": [round(b, 2) for b in baseline],
        "ratio_end_to_end_vs_raw_copy": [round(e / b, 2) for e, b in zip(e2e, baseline, strict=True)],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in results), "target_rss_mb": 300,
        "max_lookup_ms_in_swap_window": max(r["lookups_swap_window"].get("max_ms", 0) for r in results),
        "max_lookup_ms_whole_import": max(r["lookups_whole_import"].get("max_ms", 0) for r in results),
    }


def markdown(report: dict[str, Any]) -> str:
    n = report["licences"]
    out = [f"# FCC callbook bench: {n:,} synthetic licences ({report['zip_bytes'] / 1e6:.0f} MB zip, "
           f"{report['unzipped_bytes'] / 1e6:.0f} MB unzipped), {report['cpus']} CPUs, {report['rounds']} rounds", "",
           "| round | end to end | licences/s | download+unzip+COPY | join | index+swap | raw COPY baseline "
           "| ratio | peak RSS | lookups (p50 / p99 / max) whole import | index+swap window (max, longest gap) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for i, (r, b, ratio) in enumerate(zip(report["rounds_detail"], report["baseline_raw_copy_seconds"],
                                          report["ratio_end_to_end_vs_raw_copy"], strict=True), 1):
        w, s = r["lookups_whole_import"], r["lookups_swap_window"]
        out.append(f"| {i} | {r['seconds']} s | {r['licences_per_s']:,} | {r['download_and_copy_s']} s | "
                   f"{r['join_s']} s | {r['index_swap_s']} s | {b} s | {ratio}x | {r['peak_rss_mb']:.0f} MB | "
                   f"{w['lookups']:,}: {w['p50_ms']} / {w['p99_ms']} / {w['max_ms']} ms | "
                   f"{s['lookups']:,}: max {s['max_ms']} ms, gap {s['longest_gap_ms']} ms |")
    out += ["", f"Median {report['median_licences_per_s']:,} licences/s end to end (download, unzip as a stream, "
            f"COPY, join, index, swap); the baseline only COPYs the same EN/AM/HD lines, already unzipped, as "
            f"they are (one text column, no parsing, no join). Peak RSS {report['peak_rss_mb']:.0f} MB (target < {report['target_rss_mb']} MB). "
            f"Lookups never stopped: the slowest during the swap window took "
            f"{report['max_lookup_ms_in_swap_window']} ms, the slowest over the whole import "
            f"{report['max_lookup_ms_whole_import']} ms.", ""]
    return "\n".join(out)


def write_chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3))
    rounds = report["rounds_detail"]
    labels = [f"round {i}" for i in range(1, len(rounds) + 1)]
    copy_part = [r["download_and_copy_s"] for r in rounds]
    swap_part = [r["index_swap_s"] for r in rounds]
    join_part = [r["join_s"] for r in rounds]
    ax.barh([lb + " hamsrv" for lb in labels], copy_part, color="#4a7ab5", label="download + unzip + COPY")
    ax.barh([lb + " hamsrv" for lb in labels], join_part, left=copy_part, color="#6f97c9", label="join")
    ax.barh([lb + " hamsrv" for lb in labels], swap_part, left=[a + b for a, b in zip(copy_part, join_part, strict=True)],
            color="#b5cde8", label="index + swap")
    ax.barh([lb + " raw COPY" for lb in labels], report["baseline_raw_copy_seconds"], color="#999999",
            label="baseline: raw COPY")
    ax.set_xlabel("seconds")
    ax.set_title(f"FCC callbook import, {report['licences']:,} licences; peak RSS {report['peak_rss_mb']:.0f} MB")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--licences", type=int, default=1_500_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--report-only", action="store_true", help="redraw the .md and .png from the .json")
    args = parser.parse_args()
    if args.report_only:
        report = json.loads((args.out / "callbook.json").read_text())
        (args.out / "callbook.md").write_text(markdown(report))
        write_chart(report, args.out / "callbook.png")
        return
    with tempfile.TemporaryDirectory(prefix="hamsrv-bench-callbook-") as tmp:
        report = trio.run(run, args.licences, args.rounds, Path(tmp), os.environ.get("HAMSRV_DATABASE_URL"))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "callbook.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "callbook.md").write_text(markdown(report))
    write_chart(report, args.out / "callbook.png")
    print(markdown(report))


if __name__ == "__main__":
    main()
