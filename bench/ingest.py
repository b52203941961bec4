"""ADIF import bench: seven file shapes end to end through the CLI's import path, each beside raw
binary COPY of the same rows into a `qsos`-shaped table with the same indexes, in the same round.

    python -m bench.ingest                      # 3 rounds, 1,000,000 QSOs a shape (embedded PostgreSQL
                                                # unless HAMSRV_DATABASE_URL)
    python -m bench.ingest --rows 100000 --rounds 1

Shapes (what real logs look like, issue 13):
  1 ordered      one QSO a minute in time order, into an empty logbook
  2 shuffled     the same QSOs in random order, into an empty logbook
  3 5_a_minute   five QSOs a minute (same start minute, distinct calls), into an empty logbook
  4 reimport     file 1 again into the logbook that holds it (every record a duplicate)
  5 plus_10pct   file 1 plus 10% new QSOs spread through it, into that logbook
  6 lotw_merge   a LoTW report confirming every 10th QSO of that logbook, with --merge
  7 real_logs    every ADI file of shared/testdata, repeated with fresh calls and times up to the
                 row count (their field mix, non-ASCII names, comments and APP_ fields kept)

End to end = read the ADI file -> parse -> normalise -> encode -> store (straight COPY or staging +
INSERT ... ON CONFLICT, or the merge), committed per batch, timed around `import_files` (what
`hamsrv import` runs). The baseline COPYs the rows of the same file, parsed, normalised and encoded
beforehand (untimed), into an empty table created LIKE qsos with its indexes, in one transaction.
Shapes 4-6 cannot be COPYed into a table holding their duplicates, so their baseline table is empty
too. Within a round, each shape's import and its baseline run back to back, in alternating order
from round to round. After the imports, 1,000 random calls of the 1,000,000-QSO logbook are looked up
through a running `hamsrv serve` (GET /api/qsos?call=). Results: bench/results/ingest.{json,md,png}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import trio

from bench import procstat
from hamsrv.db import qsos
from hamsrv.db.database import Database
from hamsrv.identity.tokens import issue_token
from hamsrv.ingest.cli import import_files
from hamsrv.ingest.copy import DEFAULT_BATCH_RECORDS, Batch, BatchMaker
from hamsrv.ingest.jobs import CHUNK_BYTES
from hamsrv.model import QSO_COLUMNS

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TESTDATA_ADIF = Path(__file__).resolve().parent.parent.parent / "shared" / "testdata" / "adif"
_BANDS = (("20M", "14.074"), ("40M", "7.074"), ("15M", "21.074"), ("10M", "28.074"), ("80M", "3.573"),
          ("17M", "18.100"), ("30M", "10.136"), ("12M", "24.915"))
_MODES = ("FT8", "CW", "SSB", "RTTY", "FT4")
_PREFIXES = ("K", "W", "N", "DL", "G", "JA", "VK", "PY", "EA", "F", "I", "ON", "SP", "OK", "UA")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
HEADER = b"hamsrv synthetic log\n<ADIF_VER:5>3.1.6 <PROGRAMID:6>hamsrv <EOH>\n"

SHAPES = ("1_ordered", "2_shuffled", "3_5_a_minute", "4_reimport", "5_plus_10pct_new", "6_lotw_merge",
          "7_real_logs")
_SHAPE_NOTES = {
    "1_ordered": "one QSO a minute, time order, empty logbook",
    "2_shuffled": "file 1 in random order, empty logbook",
    "3_5_a_minute": "five QSOs a minute (distinct calls), empty logbook",
    "4_reimport": "file 1 again: every record a duplicate",
    "5_plus_10pct_new": "file 1 + 10% new QSOs spread through it",
    "6_lotw_merge": "LoTW report confirming every 10th QSO, --merge",
    "7_real_logs": "testdata ADI files repeated with fresh calls and times",
}
# Done means (issue 13): QSOs/s end to end, and the share of raw COPY of the same rows.
TARGET_QSOS_PER_S = {"4_reimport": 250_000, "7_real_logs": 100_000}
DEFAULT_TARGET = 150_000
TARGET_RATIO = 0.75
TARGET_RSS_MB = 300
TARGET_LOOKUP_P99_MS = 5.0


def _fields_adi(fields: tuple[tuple[str, str], ...]) -> bytes:
    return b"".join(b"<%s:%d>%s " % (k.encode(), len(v), v.encode()) for k, v in fields) + b"<EOR>\n"


def _time_fields(minute: int, second: int) -> tuple[str, str]:
    day, rest = divmod(minute, 1440)
    year = 2000 + day // 336
    month = 1 + (day // 28) % 12
    return f"{year:04d}{month:02d}{1 + day % 28:02d}", f"{rest // 60:02d}{rest % 60:02d}{second:02d}"


def synthetic_records(count: int, seed: int = 1, per_minute: int = 1) -> Iterator[bytes]:
    """`count` distinct QSOs as ADI records (no header): 10 fields each, a plausible mix of calls,
    bands and modes, `per_minute` QSOs in each minute from 2000-01-01 on (distinct calls within a
    minute), so none is a duplicate of another."""
    rnd = random.Random(seed)
    in_minute: set[str] = set()
    for i in range(count):
        minute, nth = divmod(i, per_minute)
        if nth == 0:
            in_minute.clear()
        call = ""
        while not call or call in in_minute:
            call = (f"{rnd.choice(_PREFIXES)}{rnd.randrange(10)}"
                    f"{''.join(rnd.choice(_LETTERS) for _ in range(rnd.randrange(1, 4)))}")
        in_minute.add(call)
        band, freq = _BANDS[rnd.randrange(len(_BANDS))]
        mode = _MODES[rnd.randrange(len(_MODES))]
        date, time_on = _time_fields(minute, rnd.randrange(60))
        yield _fields_adi((("CALL", call), ("QSO_DATE", date), ("TIME_ON", time_on), ("BAND", band),
                           ("MODE", mode), ("FREQ", freq), ("RST_SENT", "599" if mode == "CW" else "59"),
                           ("RST_RCVD", "57"), ("GRIDSQUARE", "FN31pr"),
                           ("NAME", rnd.choice(("John", "Anna", "Taro", "Jose")))))


def _write(path: Path, records: Iterator[bytes], head: bytes = HEADER, tail: bytes = b"") -> int:
    with open(path, "wb") as out:
        out.write(head)
        chunk: list[bytes] = []
        for record in records:
            chunk.append(record)
            if len(chunk) == 10_000:
                out.write(b"".join(chunk))
                chunk = []
        out.write(b"".join(chunk) + tail)
    return path.stat().st_size


def write_synthetic_adi(path: Path, count: int, seed: int = 1) -> int:
    """Write a synthetic ADI file (shape 1); returns its size in bytes."""
    return _write(path, synthetic_records(count, seed))


_CALL_TAG = re.compile(rb"<CALL:(\d+)>", re.IGNORECASE)
_VALUE_TAG = re.compile(rb"<([A-Za-z0-9_]+):(\d+)(?::[A-Za-z])?>")


def _with_new_call(record: bytes, suffix: bytes) -> bytes:
    match = _CALL_TAG.search(record)
    assert match is not None
    start, length = match.end(), int(match.group(1))
    call = record[start:start + length] + suffix
    return record[:match.start()] + b"<CALL:%d>%s" % (len(call), call) + record[start + length:]


def plus_new_records(records: Iterator[bytes]) -> Iterator[bytes]:
    """Shape 5: after every 10th QSO a new one in the same minute (the call with /P)."""
    for i, record in enumerate(records):
        yield record
        if i % 10 == 9:
            yield _with_new_call(record, b"/P")


def lotw_confirmations(records: Iterator[bytes]) -> Iterator[bytes]:
    """Shape 6: every 10th QSO as LoTW reports a confirmation (its field mix and comment trailers)."""
    for i, record in enumerate(records):
        if i % 10:
            continue
        fields = {m.group(1).decode(): record[m.end():m.end() + int(m.group(2))].decode()
                  for m in _VALUE_TAG.finditer(record)}
        date, time_on = fields["QSO_DATE"], fields["TIME_ON"]
        stamp = f"{date[:4]}-{date[4:6]}-{date[6:]}"
        yield (b"\n" + _fields_adi((
            ("APP_LoTW_OWNCALL", "W1AW"), ("STATION_CALLSIGN", "W1AW"), ("MY_DXCC", "291"),
            ("CALL", fields["CALL"]), ("BAND", fields["BAND"]), ("FREQ", fields["FREQ"]),
            ("MODE", fields["MODE"]), ("APP_LoTW_MODEGROUP", "DATA"), ("QSO_DATE", date),
            ("APP_LoTW_RXQSO", f"{stamp} 18:24:14 // QSO record inserted/modified at LoTW"),
            ("TIME_ON", time_on), ("QSL_RCVD", "Y"), ("QSLRDATE", "20240602"),
            ("APP_LoTW_RXQSL", "2024-06-02 23:31:22 // QSL record matched/modified at LoTW"),
            ("DXCC", "291"), ("COUNTRY", "UNITED STATES OF AMERICA"), ("CQZ", "05"), ("ITUZ", "08"))))


LOTW_HEAD = (b"ARRL Logbook of the World Status Report\nGenerated for W1AW\n\n<PROGRAMID:4>LoTW\n"
             b"<APP_LoTW_LASTQSL:19>2024-06-02 23:31:22\n<eoh>\n")
LOTW_TAIL = b"\n<APP_LoTW_EOF>\n"


def _real_records(folder: Path) -> list[list[bytes]]:
    """Per ADI file in `folder`, its records that carry CALL, QSO_DATE and TIME_ON, as bytes."""
    found = []
    for path in sorted(folder.glob("*.adi")):
        data = path.read_bytes()
        eoh = list(re.finditer(rb"<eoh>", data, re.IGNORECASE))
        body = data[eoh[-1].end():] if eoh else data
        records = [raw.strip() + b"<eor>\n" for raw in re.split(rb"<eor>", body, flags=re.IGNORECASE)
                   if {b"CALL", b"QSO_DATE", b"TIME_ON"} <= {m.group(1).upper() for m in _VALUE_TAG.finditer(raw)}]
        if records:
            found.append(records)
    return found


def _value(record: bytes, name: bytes) -> bytes | None:
    for match in _VALUE_TAG.finditer(record):
        if match.group(1).upper() == name:
            return record[match.end():match.end() + int(match.group(2))]
    return None


def _seconds_of_day(hhmmss: bytes) -> int:
    digits = hhmmss.ljust(6, b"0")
    return int(digits[:2]) * 3600 + int(digits[2:4]) * 60 + int(digits[4:6])


def _fresh(record: bytes, call: str, date: str, time_on: str) -> bytes:
    """`record` with a new call and start, its end moved along (same duration), every other byte kept."""
    values = {b"CALL": call.encode(), b"QSO_DATE": date.encode(), b"QSO_DATE_OFF": date.encode(),
              b"TIME_ON": time_on.encode()}
    old_on, old_off = _value(record, b"TIME_ON"), _value(record, b"TIME_OFF")
    if old_on and old_off and old_on.isdigit() and old_off.isdigit():
        duration = (_seconds_of_day(old_off) - _seconds_of_day(old_on)) % 86400
        end = datetime.strptime(date + time_on, "%Y%m%d%H%M%S") + timedelta(seconds=duration)
        values[b"QSO_DATE_OFF"], values[b"TIME_OFF"] = end.strftime("%Y%m%d").encode(), end.strftime("%H%M%S").encode()
    out, pos = [], 0
    for match in _VALUE_TAG.finditer(record):
        new = values.get(match.group(1).upper())
        if new is None:
            continue
        end_at = match.end() + int(match.group(2))
        out += [record[pos:match.start()], b"<%s:%d>" % (match.group(1), len(new)), new]
        pos = end_at
    return b"".join(out) + record[pos:]


def real_log_records(count: int, folder: Path = TESTDATA_ADIF, seed: int = 7) -> Iterator[bytes]:
    """Shape 7: the records of every testdata file, one file after the other, over and over, each
    with a fresh unique call (no portable suffix: those are rare in real logs) and a fresh minute."""
    records = [record for file in _real_records(folder) for record in file]
    rnd = random.Random(seed)
    for i in range(count):
        digit, serial = divmod(i, 26 ** 4)
        letters = "".join(_LETTERS[serial // 26 ** k % 26] for k in (3, 2, 1, 0))
        call = f"{rnd.choice(_PREFIXES)}{digit % 10}{letters}"
        date, time_on = _time_fields(i, rnd.randrange(60))
        yield _fresh(records[i % len(records)], call, date, time_on)


def make_files(work: Path, rows: int) -> dict[str, dict[str, Any]]:
    """Write every shape's ADI file and the baseline's COPY file; returns per shape the file name,
    its size, its rows and the seconds the import's CPU half took to encode them."""
    files = {"1_ordered": "ordered.adi", "2_shuffled": "shuffled.adi", "3_5_a_minute": "five.adi",
             "4_reimport": "ordered.adi", "5_plus_10pct_new": "plus.adi", "6_lotw_merge": "lotw.adi",
             "7_real_logs": "real.adi"}
    write_synthetic_adi(work / "ordered.adi", rows)
    shuffled = list(synthetic_records(rows))
    random.Random(2).shuffle(shuffled)
    _write(work / "shuffled.adi", iter(shuffled))
    del shuffled
    _write(work / "five.adi", synthetic_records(rows, seed=3, per_minute=5))
    _write(work / "plus.adi", plus_new_records(synthetic_records(rows)))
    _write(work / "lotw.adi", lotw_confirmations(synthetic_records(rows)), head=LOTW_HEAD, tail=LOTW_TAIL)
    _write(work / "real.adi", real_log_records(rows))
    made: dict[str, dict[str, Any]] = {}
    for shape, name in files.items():  # the baseline's rows (its table has no owner to refer to)
        rows, seconds = encode_copy_file(work / name, work / f"{shape}.copy", owner_id=1)
        made[shape] = {"file": name, "bytes": (work / name).stat().st_size, "rows": rows, "encode_s": seconds}
    return made


def _batches_of(adi: Path, owner_id: int, batch_records: int = DEFAULT_BATCH_RECORDS) -> Iterator[Batch]:
    """The import's CPU half alone: the file through BatchMaker, no database."""
    maker = BatchMaker(owner_id, batch_records=batch_records)
    with open(adi, "rb") as source:
        while data := source.read(CHUNK_BYTES):
            maker.feed(data)
            yield from maker.batches()
    maker.close()
    yield from maker.batches()


def encode_copy_file(adi: Path, out: Path, owner_id: int) -> tuple[int, float]:
    """The rows of `adi`, parsed, normalised and encoded for binary COPY, one stream per batch (the
    baseline's untimed preparation). Returns the number of rows and the seconds the CPU half took."""
    rows = 0
    started = time.perf_counter()
    with open(out, "wb") as sink:
        for batch in _batches_of(adi, owner_id, batch_records=50_000):
            if batch.rows:
                sink.write(len(batch.data).to_bytes(8, "big") + batch.data)
                rows += batch.rows
    return rows, time.perf_counter() - started


async def _raw_copy(db: Database, copy_file: Path) -> float:
    """Seconds to COPY every stream of `copy_file` into a new table LIKE qsos with its indexes and
    storage options, in one transaction (the table is dropped afterwards, untimed)."""
    table = f"bench_copy_{random.randrange(10**6)}"
    columns = ", ".join(("owner_id", *QSO_COLUMNS))
    options = (await db.fetch("SELECT array_to_string(reloptions, ', ') AS o FROM pg_class WHERE relname = 'qsos'"))[0]["o"]
    await db.execute(f"CREATE TABLE {table} (LIKE qsos INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING INDEXES)"
                     + (f" WITH ({options})" if options else ""))  # qsos' fillfactor too
    try:
        async with db.connection() as conn:
            started = time.perf_counter()
            async with conn.transaction():
                with open(copy_file, "rb") as handle:  # noqa: ASYNC230 - sequential local reads
                    while head := handle.read(8):
                        data = handle.read(int.from_bytes(head, "big"))
                        async with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                            await copy.write(data)
            return time.perf_counter() - started
    finally:
        await db.execute(f"DROP TABLE {table}")


def _reset_peak_rss() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM starts again from VmRSS


async def _new_owner(db: Database, call: str) -> int:
    row = await db.fetchrow("INSERT INTO users (callsign) VALUES (%s) RETURNING id", [call])
    assert row is not None
    return int(row["id"])


async def _import(db: Database, owner: str, adi: Path, merge: bool) -> dict[str, Any]:
    """One timed import through the CLI's path."""
    with open(os.devnull, "w") as quiet:
        _reset_peak_rss()
        cpu_before = procstat.cpu_seconds([os.getpid()])
        started = time.perf_counter()
        [result] = await import_files(db, owner, [adi], merge=merge, out=quiet)
        seconds = time.perf_counter() - started
        cpu = procstat.cpu_used(cpu_before, procstat.cpu_seconds([os.getpid()]))
    return {"seconds": seconds, "peak_rss_mb": procstat.peak_rss_mb([os.getpid()]), "process_cpu_s": cpu,
            **{k: getattr(result, k) for k in ("records_read", "inserted", "duplicates", "merged", "rejected")}}


# Owner of each shape's import (shapes 4-6 go into the logbook that shape 1 filled) and what the
# import must report, as a function of the number of rows.
_OWNER = {"1_ordered": "A", "2_shuffled": "B", "3_5_a_minute": "C", "4_reimport": "A",
          "5_plus_10pct_new": "A", "6_lotw_merge": "A", "7_real_logs": "D"}


def _expected(shape: str, rows: int, copy_rows: int) -> dict[str, int]:
    """The counts an import of `shape` must report; `copy_rows` = the rows the file encodes to."""
    return {"4_reimport": {"inserted": 0, "duplicates": rows},
            "5_plus_10pct_new": {"inserted": rows // 10, "duplicates": rows},
            "6_lotw_merge": {"merged": copy_rows, "inserted": 0},
            "7_real_logs": {"inserted": copy_rows}}.get(shape, {"inserted": rows, "rejected": 0})


async def _lookups(db: Database, owner_id: int, owner_call: str, calls: list[str], work: Path) -> dict[str, Any]:
    """p50/p99 of GET /api/qsos?call= against a running `hamsrv serve` on this database."""
    import httpx

    from bench.servers import free_ports, hamsrv_command

    await db.execute("ANALYZE qsos")
    token = await issue_token(db, owner_id, "bench")
    port, cluster = free_ports(2)
    env = {**os.environ, "HAMSRV_DATABASE_URL": db.pool.conninfo, "HAMSRV_DATA_DIR": str(work / "serve"),
           "HAMSRV_RATE_API": "100000"}  # one client asking back to back: not what the rate limit is about
    log = open(work / "serve.log", "wb")  # noqa: SIM115, ASYNC230 - closed below
    server = subprocess.Popen([*hamsrv_command(), "serve", "--http", f"127.0.0.1:{port}",
                               "--cluster", f"127.0.0.1:{cluster}"], env=env, stdout=log, stderr=log)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                          timeout=10) as client:
            for _ in range(300):
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/healthz").status_code == 200:
                        break
                if server.poll() is not None:
                    raise RuntimeError(f"hamsrv serve exited: see {work / 'serve.log'}")
                await trio.sleep(0.2)
            for call in calls[:50]:  # warm-up
                client.get("/api/qsos", params={"call": call})
            seconds, found = [], 0
            for call in calls:
                started = time.perf_counter()
                response = client.get("/api/qsos", params={"call": call})
                seconds.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text
                found += bool(response.json()["qsos"])
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    query_seconds = []
    for call in calls:  # the endpoint's query alone, from this process: what the index does
        started = time.perf_counter()
        await qsos.search(db, owner_id, qsos.Search(call=call))
        query_seconds.append(time.perf_counter() - started)
    ms, query_ms = sorted(s * 1000 for s in seconds), sorted(s * 1000 for s in query_seconds)
    return {"calls": len(calls), "found": found, "p50_ms": round(statistics.median(ms), 2),
            "p99_ms": round(_p99(ms), 2), "max_ms": round(ms[-1], 2),
            "query_p50_ms": round(statistics.median(query_ms), 2), "query_p99_ms": round(_p99(query_ms), 2)}


def _p99(ordered: list[float]) -> float:
    return ordered[int(0.99 * (len(ordered) - 1))]


async def run(rows: int, rounds: int, work: Path, database_url: str | None) -> dict[str, Any]:
    """`rounds` rounds; in each, every shape's import and its raw COPY back to back."""
    subprocess.run([sys.executable, "-m", "bench.ingest", "--make-files", str(work), "--rows", str(rows)],
                   check=True)  # in a child, so that this process's peak RSS is the import's
    files = json.loads((work / "files.json").read_text())
    db = await Database.open(database_url, work, pool_size=4)
    results: dict[str, list[dict[str, Any]]] = {shape: [] for shape in SHAPES}
    loads: list[tuple[float, float, float]] = [os.getloadavg()]
    lookups: list[dict[str, Any]] = []
    try:
        for number in range(rounds):
            await db.execute("TRUNCATE qsos CASCADE")
            await db.execute("DELETE FROM users WHERE callsign LIKE 'BENCH%%'")
            owners = {name: f"BENCH{number}{name}" for name in "ABCD"}
            for call in owners.values():
                await _new_owner(db, call)
            for shape in SHAPES:
                e2e = (db, owners[_OWNER[shape]], work / files[shape]["file"], shape == "6_lotw_merge")
                if number % 2 == 0:
                    done = await _import(*e2e)
                    copy_s = await _raw_copy(db, work / f"{shape}.copy")
                else:
                    copy_s = await _raw_copy(db, work / f"{shape}.copy")
                    done = await _import(*e2e)
                expected = _expected(shape, rows, files[shape]["rows"])
                wrong = {k: (done[k], v) for k, v in expected.items() if done[k] != v}
                assert not wrong, f"{shape}: (got, expected) {wrong}"
                done["copy_seconds"] = copy_s
                results[shape].append(done)
                print(f"round {number + 1} {shape}: {done['records_read'] / done['seconds']:,.0f} QSOs/s, "
                      f"raw COPY {files[shape]['rows'] / copy_s:,.0f} rows/s, load {os.getloadavg()[0]:.2f}",
                      flush=True)
            owner = await db.fetchrow("SELECT id FROM users WHERE callsign = %s", [owners["A"]])
            assert owner is not None
            sample = [row["call"] for row in await db.fetch(
                "SELECT call FROM qsos WHERE owner_id = %s ORDER BY random() LIMIT 1000", [owner["id"]])]
            lookups.append(await _lookups(db, owner["id"], owners["A"], sample, work))
            lookups[-1]["logbook_qsos"] = (await db.fetch(
                "SELECT count(*) AS n FROM qsos WHERE owner_id = %s", [owner["id"]]))[0]["n"]
            print(f"round {number + 1} lookups: {lookups[-1]}", flush=True)
            loads.append(os.getloadavg())
    finally:
        await db.close()
    return _report(rows, rounds, files, results, lookups, loads)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _report(rows: int, rounds: int, files: dict[str, Any], results: dict[str, list[dict[str, Any]]],
            lookups: list[dict[str, Any]], loads: list[tuple[float, float, float]]) -> dict[str, Any]:
    shapes = {}
    for shape, runs in results.items():
        records = runs[0]["records_read"]
        copy_rows = files[shape]["rows"]
        ratios = [r["copy_seconds"] / r["seconds"] * records / copy_rows for r in runs]
        qsos_per_s = [records / r["seconds"] for r in runs]
        shapes[shape] = {
            "note": _SHAPE_NOTES[shape], "records": records, "copy_rows": copy_rows,
            "file_bytes": files[shape]["bytes"], "bytes_per_record": round(files[shape]["bytes"] / records),
            "counts": {k: runs[0][k] for k in ("inserted", "duplicates", "merged", "rejected")},
            "qsos_per_s": [round(q) for q in qsos_per_s], "median_qsos_per_s": round(_median(qsos_per_s)),
            "copy_rows_per_s": [round(copy_rows / r["copy_seconds"]) for r in runs],
            "median_copy_rows_per_s": round(_median([copy_rows / r["copy_seconds"] for r in runs])),
            "ratio": [round(r, 3) for r in ratios], "median_ratio": round(_median(ratios), 3),
            "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs), 1),
            "process_cpu_s": round(_median([r["process_cpu_s"] for r in runs]), 2),
            "parse_only_qsos_per_s": round(records / files[shape]["encode_s"]),
            "target_qsos_per_s": TARGET_QSOS_PER_S.get(shape, DEFAULT_TARGET),
        }
    return {
        "rows": rows, "rounds": rounds, "host": platform.node(), "cpus": os.cpu_count(),
        "python": platform.python_version(), "load_average": [[round(x, 2) for x in load] for load in loads],
        "shapes": shapes, "lookups": lookups,
        "lookup_p99_ms": max(run["p99_ms"] for run in lookups) if lookups else None,
        "target_ratio": TARGET_RATIO, "target_rss_mb": TARGET_RSS_MB, "target_lookup_p99_ms": TARGET_LOOKUP_P99_MS,
    }


def _verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def markdown(report: dict[str, Any]) -> str:
    loads = ", ".join(f"{load[0]:.2f}" for load in report["load_average"])
    lines = [f"# ADIF import bench: {report['rows']:,} QSOs a shape, {report['cpus']} CPUs, "
             f"{report['rounds']} rounds", "",
             f"1-minute load average at the start and after each round: {loads} (a shared machine: read "
             "the ratios, measured back to back in the same round).", "",
             "| shape | records | B/record | counts (ins/dup/merged/rej) | median QSOs/s | target | raw COPY rows/s "
             "(same rows, same indexes) | ratio (rounds) | peak RSS MB | targets met |",
             "|---|---:|---:|---|---:|---:|---:|---|---:|---|"]
    for shape, s in report["shapes"].items():
        counts = "/".join(f"{s['counts'][k]:,}" for k in ("inserted", "duplicates", "merged", "rejected"))
        ratios = ", ".join(f"{r:.2f}" for r in s["ratio"])
        met = (s["median_qsos_per_s"] >= s["target_qsos_per_s"] and s["median_ratio"] >= report["target_ratio"]
               and s["peak_rss_mb"] < report["target_rss_mb"])
        lines.append(f"| {shape} | {s['records']:,} | {s['bytes_per_record']} | {counts} | "
                     f"{s['median_qsos_per_s']:,} | {s['target_qsos_per_s']:,} | {s['median_copy_rows_per_s']:,} | "
                     f"{s['median_ratio']:.2f} ({ratios}) | {s['peak_rss_mb']} | {_verdict(met)} |")
    lines += ["", "Shapes: " + "; ".join(f"{shape}: {note}" for shape, note in _SHAPE_NOTES.items()) + ".", ""]
    for run in report["lookups"]:
        lines.append(f"Call lookups (GET /api/qsos?call=, {run['calls']:,} random calls of the "
                     f"{run.get('logbook_qsos', 0):,}-QSO logbook of shapes 1 and 4-6, {run['found']:,} found): p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms, "
                     f"max {run['max_ms']} ms; the query alone (qsos.search from the bench process): "
                     f"p50 {run['query_p50_ms']} ms, p99 {run['query_p99_ms']} ms.")
    lines += ["", f"Targets: every shape >= {report['target_ratio']:.2f}x raw COPY; 150,000 QSOs/s (shape 4: "
              f"250,000; shape 7: 100,000); peak RSS < {report['target_rss_mb']} MB; lookup p99 <= "
              f"{report['target_lookup_p99_ms']} ms.", ""]
    return "\n".join(lines)


def write_chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    shapes = list(reversed(report["shapes"]))
    fig, ax = plt.subplots(figsize=(10, 5))
    ys = range(len(shapes))
    e2e = [report["shapes"][s]["median_qsos_per_s"] for s in shapes]
    raw = [report["shapes"][s]["median_copy_rows_per_s"] for s in shapes]
    ax.barh([y + 0.2 for y in ys], e2e, height=0.4, color="#4a7ab5", label="hamsrv import (end to end)")
    ax.barh([y - 0.2 for y in ys], raw, height=0.4, color="#b0b0b0", label="raw binary COPY, same rows + indexes")
    for y, shape in zip(ys, shapes, strict=True):
        s = report["shapes"][shape]
        ax.plot([s["target_qsos_per_s"]] * 2, [y - 0.45, y + 0.45], color="#c0392b", linestyle="--",
                label="target" if y == 0 else None)
        ax.text(max(e2e[y], raw[y]) * 1.02, y, f"{s['median_ratio']:.2f}x COPY, {s['peak_rss_mb']:.0f} MB RSS",
                va="center", fontsize=8)
    ax.set_yticks(list(ys), shapes)
    ax.set_xlim(0, max(e2e + raw + [250_000]) * 1.45)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value / 1000:.0f}k"))
    ax.set_xlabel(f"QSOs/s (median of {report['rounds']} rounds)")
    p99 = report.get("lookup_p99_ms")
    ax.set_title(f"ADIF import, {report['rows']:,} QSOs a shape; call lookup p99 {p99} ms")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--make-files", type=Path, help=argparse.SUPPRESS)  # the child that writes the inputs
    args = parser.parse_args()
    if args.make_files:
        (args.make_files / "files.json").write_text(json.dumps(make_files(args.make_files, args.rows)))
        return
    with tempfile.TemporaryDirectory(prefix="hamsrv-bench-ingest-") as tmp:
        report = trio.run(run, args.rows, args.rounds, Path(tmp), os.environ.get("HAMSRV_DATABASE_URL"))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ingest.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "ingest.md").write_text(markdown(report))
    write_chart(report, args.out / "ingest.png")
    print(markdown(report))


if __name__ == "__main__":
    main()
