"""Ingest only: server CPU per spot at a steady spot rate with one WebSocket client, hamsrv's two cluster
ingresses against the bare trio prototype's ingest in the same run.

    python -m bench.ingest_only [--spots 5000] [--rate 1000] [--users 10]

Rows:
* hamsrv, feed: one connection from a trusted address (HAMSRV_CLUSTER_FEEDS) pushing raw `DX de` lines.
* hamsrv, users: `--users` telnet users (spots switched off with `unset/dx`, the spot rate limit lifted)
  typing `DX <kHz> <call> <comment>` commands in turn; each gets its prompt back.
* prototype: its own ingest (one HTTP POST per spot on a kept-alive connection), the baseline peer.

Every row sends the same spots (bench.loadgen's mix) one at a time on a fixed schedule, so reads carry one
line each, as from a real feed. CPU is utime+stime of the server over the measured spots (after a warm-up),
divided by the spots its WebSocket client received. The server is pinned to --server-cpus, this process
(the generator and the client) to --generator-cpus. Writes bench/results/ingest-only.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import procstat
from bench.loadgen import SPOTTER, encode_for_ingress, spot_values
from bench.servers import RunningServer, ServerOptions, start_server
from bench.wire_bytes import Counter, connect

RESULTS = Path(__file__).resolve().parent / "results"
ROWS = ("feed", "users", "prototype")
DRAINS: set[asyncio.Task[None]] = set()  # readers of the senders' replies, held until the process ends


async def cluster_login(server: RunningServer, call: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.ingress_port)
    seen = b""
    while b"login:" not in seen.lower():
        seen += await asyncio.wait_for(reader.read(1024), 30)
    writer.write(f"{call}\r\n".encode())
    return reader, writer


def dx_command(seq: int, now: float) -> bytes:
    """The loadgen's spot `seq` as a user types it."""
    khz, dx, comment = spot_values(seq, "t", now)
    return f"DX {khz:.1f} {dx} {comment}\r\n".encode()


async def open_senders(server: RunningServer, row: str, users: int) -> list[asyncio.StreamWriter]:
    """Connections ready to take spots; their replies are read and thrown away in the background."""
    if row == "prototype":
        pairs = [await asyncio.open_connection("127.0.0.1", server.ingress_port)]
    elif row == "feed":
        pairs = [await cluster_login(server, SPOTTER)]
    else:
        pairs = [await cluster_login(server, f"K{n % 10}U{chr(65 + n // 10 % 26)}{chr(65 + n // 260 % 26)}")
                 for n in range(users)]
        for _, writer in pairs:
            writer.write(b"unset/dx\r\n")
    await asyncio.sleep(0.5)
    for reader, _ in pairs:
        DRAINS.add(asyncio.get_running_loop().create_task(drain(reader)))
    return [writer for _, writer in pairs]


async def drain(reader: asyncio.StreamReader) -> None:
    while await reader.read(1 << 16):
        pass


async def send(server: RunningServer, row: str, writers: list[asyncio.StreamWriter], first: int, count: int,
               rate: float) -> None:
    start = time.time()
    for n in range(count):
        seq = first + n
        line = dx_command(seq, time.time()) if row == "users" else \
            encode_for_ingress(server.ingress, server.ingress_path, seq, "t", time.time())
        writers[seq % len(writers)].write(line)
        await asyncio.sleep(max(0.0, start + (n + 1) / rate - time.time()))


async def measure(row: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    name = "prototype" if row == "prototype" else "hamsrv"
    (workdir / row).mkdir()
    env = {"HAMSRV_CLUSTER_SPOT_RATE": "100000000"}
    server = await start_server(name, ServerOptions(cpus=args.server_cpus, env=env), workdir / row)
    try:
        client: Counter = await connect(server, "")
        writers = await open_senders(server, row, args.users)
        warmup = int(args.rate)  # one second of spots first: caches, allocator and JIT-free steady state
        total = warmup + args.spots
        reading = asyncio.create_task(client.run(total))
        await send(server, row, writers, 0, warmup, args.rate)
        await asyncio.sleep(0.2)
        pids = server.measured_pids()
        before, own_before, wall = procstat.cpu_seconds(pids), os.times(), time.monotonic()
        await send(server, row, writers, warmup, args.spots, args.rate)
        await asyncio.wait_for(reading, 30)
        after, own_after, wall = procstat.cpu_seconds(pids), os.times(), time.monotonic() - wall
    finally:
        await server.stop()
    cpu = procstat.cpu_used(before, after)
    own = (own_after.user + own_after.system) - (own_before.user + own_before.system)
    return {"server": name, "spots": args.spots, "received": client.spots - warmup, "cpu_s": round(cpu, 3),
            "us_per_spot": round(cpu / args.spots * 1e6, 1), "server_cpu_percent": round(100 * cpu / wall, 1),
            "generator_cpu_percent": round(100 * own / wall, 1), "seconds": round(wall, 2)}


def markdown(report: dict[str, Any]) -> str:
    base = report["rows"]["prototype"]["us_per_spot"]
    lines = [f"# Ingest only ({report['spots']} spots at {report['rate']:g}/s, one WebSocket client)", "",
             f"{report['machine']}. Load before the run: {report['load']}. Server pinned to CPU "
             f"{report['server_cpus']}, generator to CPU {report['generator_cpus']}. Baseline peer: the bare "
             "trio prototype's own ingest (HTTP POST per spot).", "",
             "| server | ingress | server CPU per spot | vs prototype | server CPU | generator CPU | received |",
             "|---|---|---:|---:|---:|---:|---:|"]
    ingress = {"feed": "cluster port, trusted feed (`DX de` lines)",
               "users": f"cluster port, {report['users']} telnet users (`DX` commands)",
               "prototype": "HTTP POST"}
    for row, r in report["rows"].items():
        lines.append(f"| {r['server']} | {ingress[row]} | {r['us_per_spot']:.1f} us | {r['us_per_spot'] / base:.2f}x"
                     f" | {r['server_cpu_percent']:.0f}% | {r['generator_cpu_percent']:.0f}% "
                     f"| {r['received']}/{r['spots']} |")
    feed = report["rows"]["feed"]["us_per_spot"]
    lines += ["", f"Target (issue 12): <= 40 us per spot from a feed: {'met' if feed <= 40 else 'missed'} "
                  f"({feed:.1f} us)."]
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    os.sched_setaffinity(0, {int(c) for c in args.generator_cpus.split(",")})
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    with tempfile.TemporaryDirectory(prefix="hamsrv-ingest-") as tmp:
        rows = {row: await measure(row, args, Path(tmp)) for row in args.rows.split(",")}
    uname = os.uname()
    return {"spots": args.spots, "rate": args.rate, "users": args.users, "rows": rows, "load": load,
            "server_cpus": args.server_cpus, "generator_cpus": args.generator_cpus,
            "machine": f"{os.cpu_count()} CPUs, Linux {uname.release}"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_only", description=__doc__.splitlines()[0])
    parser.add_argument("--spots", type=int, default=5000, help="measured spots (after one second of warm-up)")
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--users", type=int, default=10, help="telnet users sharing the rate in the users row")
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--generator-cpus", default="1")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """The JSON always; the table only when the baseline row ran (it is what the ratios divide by)."""
    args = parse_args(argv)
    report = asyncio.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ingest-only.json").write_text(json.dumps(report, indent=1) + "\n")
    if "prototype" not in report["rows"]:
        print(json.dumps(report, indent=1))
        return
    (args.out / "ingest-only.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
