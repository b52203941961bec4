"""Firehose throughput bench: hamsrv against peer servers fed the same spot stream in the same run.

For each (clients, spots/s) point and each server, in turn: start the server pinned to the server
CPU, connect the clients from several receiver processes pinned to the generator CPU, publish a
warm-up, a measured window and a cool-down, and read CPU and peak RSS from /proc.

    python -m bench.firehose --matrix quick          # < 3 minutes, results committed
    python -m bench.firehose --matrix full           # the issue's target points, long
    python -m bench.firehose --servers websockets,node --clients 200 --rate 100 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import procstat
from bench.loadgen import pin_to_cpus, raise_fd_limit
from bench.report import percentile, write_reports
from bench.servers import (
    PEER_NAMES,
    SERVER_NAMES,
    VARIANT_NAMES,
    RunningServer,
    ServerOptions,
    ServerUnavailable,
    start_server,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CLIENTS_PER_RECEIVER = 1250  # well inside RLIMIT_NOFILE; more processes only add switching
SATURATED_CPU_PERCENT = 90.0  # generator CPU share (of its CPUs) above which numbers are suspect


@dataclass(frozen=True)
class Timing:
    warmup: float
    window: float
    drain: float


MATRICES: dict[str, tuple[list[tuple[int, int]], Timing]] = {
    "quick": ([(1000, 100), (1000, 1000)], Timing(2.0, 5.0, 2.0)),
    "full": ([(200, 100), (1000, 100), (1000, 1000), (5000, 100), (5000, 1000)],
             Timing(5.0, 20.0, 5.0)),
}


class Child:
    """A load-generator process spoken to in JSON lines over stdin/stdout."""

    def __init__(self, process: asyncio.subprocess.Process, role: str) -> None:
        self.process = process
        self.role = role

    @classmethod
    async def start(cls, role: str, *args: str) -> Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.loadgen", role, *args, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).resolve().parents[1],
            limit=1 << 24)
        return cls(process, role)

    async def expect(self, event: str, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        while True:
            try:
                line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
            except TimeoutError:
                raise RuntimeError(f"{self.role}: no '{event}' within {timeout:g} s") from None
            if not line:
                raise RuntimeError(f"{self.role} exited (code {await self.process.wait()}) "
                                   f"before '{event}'")
            message: dict[str, Any] = json.loads(line)
            if message["event"] == event:
                return message

    def tell(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


def receiver_split(clients: int, processes: int, latency_clients: int) -> list[tuple[int, int]]:
    """(clients, latency-sampled clients) for each receiver process, as even as possible."""
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    return [(share, max(1, math.ceil(latency_clients / processes))) for share in shares if share]


async def measure_run(server: RunningServer, clients: int, rate: float, timing: Timing,
                      args: argparse.Namespace) -> dict[str, Any]:
    """Drive one point against a started server and return its numbers."""
    processes = args.receivers or max(1, math.ceil(clients / CLIENTS_PER_RECEIVER))
    receivers: list[Child] = []
    publisher: Child | None = None
    try:
        for share, sampled in receiver_split(clients, processes, args.latency_clients):
            receivers.append(await Child.start(
                "receive", "--port", str(server.ws_port), "--path", server.ws_path,
                "--clients", str(share), "--latency-clients", str(sampled),
                "--cpus", args.generator_cpus, *(["--deflate"] if args.deflate else [])))
        connected = [await r.expect("connected", 60 + clients / 20) for r in receivers]
        publisher = await Child.start(
            "publish", "--ingress", server.ingress, "--port", str(server.ingress_port),
            "--path", server.ingress_path, "--rate", str(rate), "--warmup", str(timing.warmup),
            "--window", str(timing.window), "--drain", str(timing.drain),
            "--cpus", args.generator_cpus)
        await publisher.expect("ready", 60)
        publisher.tell("go")
        started = (await publisher.expect("started", 10))["at"]
        generator = [r.process.pid for r in receivers] + [publisher.process.pid]
        await asyncio.sleep(max(0.0, started + timing.warmup - time.time()))
        server_pids = server.measured_pids()
        server_before, generator_before = procstat.cpu_seconds(server_pids), procstat.cpu_seconds(generator)
        window_began = time.time()
        await asyncio.sleep(max(0.0, started + timing.warmup + timing.window - time.time()))
        server_after, generator_after = procstat.cpu_seconds(server_pids), procstat.cpu_seconds(generator)
        window = time.time() - window_began
        published = await publisher.expect("published", timing.drain + 60)
        for receiver in receivers:
            receiver.tell("stop")
        reports = [await r.expect("report", 60) for r in receivers]
        peak_rss = procstat.peak_rss_mb(server.measured_pids())
    finally:
        for child in receivers + ([publisher] if publisher else []):
            await child.close()
    histogram: dict[int, int] = {}
    for report in reports:
        for delay, count in report["latency_ms"].items():
            histogram[int(delay)] = histogram.get(int(delay), 0) + count
    delivered = sum(r["delivered"] for r in reports)
    expected = published["measured"] * clients
    server_cpu = procstat.cpu_used(server_before, server_after)
    generator_cpu = procstat.cpu_used(generator_before, generator_after)
    generator_cores = len(args.generator_cpus.split(","))
    generator_percent = 100 * generator_cpu / window / generator_cores
    return {
        "server": server.name, "clients": clients, "rate": rate, "window_s": round(window, 3),
        "published": published["measured"], "delivered": delivered, "expected": expected,
        "delivered_fraction": delivered / expected if expected else 0.0,
        "deliveries_per_s": delivered / timing.window,
        "p50_ms": percentile(histogram, 0.50), "p99_ms": percentile(histogram, 0.99),
        "latency_samples": sum(histogram.values()),
        "server_cpu_s": round(server_cpu, 3),
        "server_cpu_percent": 100 * server_cpu / window,
        "server_cpu_s_per_million": server_cpu / (delivered / 1e6) if delivered else None,
        "server_peak_rss_mb": round(peak_rss, 1), "server_processes": len(server_pids),
        "generator_cpu_percent": generator_percent,
        "generator_saturated": generator_percent > SATURATED_CPU_PERCENT,
        "receiver_processes": len(receivers),
        "connected": sum(c["clients"] for c in connected),
        "failed_connects": sum(c["failed"] for c in connected),
        "connect_errors": [e for c in connected for e in c["errors"]][:3],
        "disconnected": sum(r["disconnected"] for r in reports),
        "min_per_client": min(r["min_per_client"] for r in reports),
        "max_per_client": max(r["max_per_client"] for r in reports),
        "receiver_user_s": round(sum(r["user_s"] for r in reports), 2),
        "receiver_system_s": round(sum(r["system_s"] for r in reports), 2),
        "publisher_max_lag_ms": published["max_lag_ms"],
        "publisher_closed_early": published["closed_early"],
        "http_publish_ok": published["http_ok"], "http_publish_responses": published["http_responses"],
    }


async def run_point(name: str, clients: int, rate: float, timing: Timing,
                    args: argparse.Namespace, options: ServerOptions,
                    measured: dict[str, str]) -> dict[str, Any]:
    """One server at one point, in a scratch folder; an unavailable server yields an error entry."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    try:
        try:
            server = await start_server(name, options, workdir)
        except ServerUnavailable as exc:
            return {"server": name, "clients": clients, "rate": rate, "error": str(exc)}
        measured[name] = server.measured
        try:
            return await measure_run(server, clients, rate, timing, args)
        except (RuntimeError, KeyError) as exc:
            return {"server": name, "clients": clients, "rate": rate,
                    "error": f"{type(exc).__name__}: {exc}\n{server.log_tail()}"}
        finally:
            await server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def describe_run(run: dict[str, Any]) -> str:
    if "error" in run:
        return f"{run['server']:>10} {run['clients']:>5} x {run['rate']:>5g}: not run: {run['error']}"
    return (f"{run['server']:>10} {run['clients']:>5} x {run['rate']:>5g}: "
            f"{run['deliveries_per_s']:>11,.0f} deliveries/s, {run['delivered_fraction']:.2%} "
            f"delivered, p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms, "
            f"server CPU {run['server_cpu_percent']:.0f}% "
            f"({run['server_cpu_s_per_million'] or 0:.2f} s/M), RSS {run['server_peak_rss_mb']:.0f} MiB, "
            f"generator CPU {run['generator_cpu_percent']:.0f}%")


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    if args.matrix:
        points, timing = MATRICES[args.matrix]
    else:
        points = [(c, r) for c in args.clients for r in args.rate]
        timing = MATRICES["quick"][1]
    timing = Timing(args.warmup if args.warmup is not None else timing.warmup,
                    args.duration if args.duration is not None else timing.window,
                    args.drain if args.drain is not None else timing.drain)
    options = ServerOptions(cpus=args.server_cpus,
                            hamsrv_command=args.hamsrv_command.split() if args.hamsrv_command else [])
    runs: list[dict[str, Any]] = []
    measured: dict[str, str] = {}
    started = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    load_before = load_average()
    for clients, rate in points:
        for name in args.servers:  # servers interleaved per point, so drift hits all alike
            run = await run_point(name, clients, rate, timing, args, options, measured)
            print(describe_run(run), flush=True)
            runs.append(run)
    if not any(run["server"] in PEER_NAMES and "error" not in run for run in runs):
        print("warning: no peer completed, so there are no CPU ratios", file=sys.stderr)
    return {
        "matrix": args.matrix or "custom", "started": started, "deflate": args.deflate,
        "machine": f"{platform.node()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
                   f"Python {platform.python_version()}",
        "server_cpus": args.server_cpus, "generator_cpus": args.generator_cpus,
        "warmup_s": timing.warmup, "window_s": timing.window, "drain_s": timing.drain,
        "measured_processes": measured, "runs": runs, "load": [load_before, load_average()],
    }


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages: other work on a shared machine skews CPU figures."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def comma_list(kind: type) -> Any:
    return lambda text: [kind(item) for item in text.split(",") if item]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.firehose", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--matrix", choices=sorted(MATRICES),
                        help="a preset list of points; otherwise --clients x --rate")
    parser.add_argument("--servers", type=comma_list(str), default=list(SERVER_NAMES),
                        help=f"comma-separated, from {','.join(SERVER_NAMES)} (default: all)")
    parser.add_argument("--clients", type=comma_list(int), default=[200], help="e.g. 200,1000")
    parser.add_argument("--rate", type=comma_list(float), default=[100.0],
                        help="spots per second, e.g. 100,1000")
    parser.add_argument("--duration", type=float, help="measured window, seconds")
    parser.add_argument("--warmup", type=float, help="seconds of spots before the window")
    parser.add_argument("--drain", type=float, help="seconds allowed for late spots after it")
    parser.add_argument("--hamsrv-command", help="how to run hamsrv, e.g. 'python -m hamsrv'")
    parser.add_argument("--receivers", type=int, default=0,
                        help=f"receiver processes (default: one per {CLIENTS_PER_RECEIVER} clients)")
    parser.add_argument("--latency-clients", type=int, default=40,
                        help="clients, spread evenly, whose every spot is timed")
    parser.add_argument("--server-cpus", default="0", help="taskset CPU list for the server")
    parser.add_argument("--generator-cpus", default="1", help="CPU list for the load generator")
    parser.add_argument("--deflate", action="store_true",
                        help="clients offer permessage-deflate (servers that decline it send plain frames)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--name", help="file name stem (default firehose-<matrix>)")
    args = parser.parse_args(argv)
    unknown = set(args.servers) - set(SERVER_NAMES) - set(VARIANT_NAMES)
    if unknown:
        parser.error(f"unknown server(s) {', '.join(sorted(unknown))}; choose from "
                     f"{', '.join(SERVER_NAMES)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    raise_fd_limit()
    pin_to_cpus(args.generator_cpus)
    report = asyncio.run(bench(args))
    default_name = f"firehose-{report['matrix']}" + ("-deflate" if args.deflate else "")
    for path in write_reports(report, args.out, args.name or default_name):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
