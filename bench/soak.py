"""Soak run: a real `hamsrv serve` under steady mixed load for a fixed time, watched for drift.

`python -m bench.soak --minutes 30` starts hamsrv (embedded PostgreSQL in a scratch folder), then keeps
up, all at once: a cluster feed publishing spots at --rate, --clients firehose WebSocket clients that
each stay a random 5-60 s and are replaced, an ADI import of --qsos fresh QSOs every --import-every
seconds, and a prober timing `GET /healthz` and `GET /api/spots` twice a second. Every --sample seconds
it records the server's RSS (hamsrv and its children except PostgreSQL), open files, and the probes'
p50/p99 latency. It writes NAME.json, NAME.md and NAME.png to --out. "Drift" compares the last fifth of
the run with the fifth after the first (warm-up) one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean
from typing import Any

import httpx
import websockets

from bench.loadgen import ak1a_line
from bench.procstat import process_tree
from bench.servers import REPO_DIR, ServerOptions, start_server

RESULTS = Path(__file__).resolve().parent / "results"
HAMSRV = [sys.executable, "-m", "hamsrv.cli"]  # this checkout's code, not whichever hamsrv is installed


def rss_mb(pids: list[int]) -> float:
    total_kb = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


def open_files(pids: list[int]) -> int:
    count = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            count += len(os.listdir(f"/proc/{pid}/fd"))
    return count


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def adi_batch(round_no: int, count: int) -> bytes:
    """`count` QSOs no earlier import had (their minute and call depend on the round)."""
    start = 1_600_000_000 + round_no * count * 60
    records = []
    for i in range(count):
        t = time.gmtime(start + i * 60)
        call = f"S{round_no % 10}{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}{chr(65 + i // 676 % 26)}"
        records.append(f"<CALL:{len(call)}>{call}<QSO_DATE:8>{time.strftime('%Y%m%d', t)}"
                       f"<TIME_ON:4>{time.strftime('%H%M', t)}<BAND:3>20m<MODE:3>FT8<FREQ:6>14.074<EOR>\n")
    return ("soak\n<EOH>\n" + "".join(records)).encode()


class Soak:
    def __init__(self, args: argparse.Namespace, http_port: int, cluster_port: int, token: str):
        self.args, self.http_port, self.cluster_port, self.token = args, http_port, cluster_port, token
        self.base = f"http://127.0.0.1:{http_port}"
        self.latencies: list[float] = []
        self.probe_errors = 0
        self.spots_sent = 0
        self.ws_messages = 0
        self.ws_sessions = 0
        self.ws_errors = 0
        self.imports_done = 0
        self.import_errors = 0
        self.import_seconds: list[float] = []
        self.stop_at = time.monotonic() + args.minutes * 60

    def running(self) -> bool:
        return time.monotonic() < self.stop_at

    async def feed(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.cluster_port)
        seen = b""
        while b"login:" not in seen.lower():
            seen += await asyncio.wait_for(reader.read(1024), 30)
        writer.write(b"N0CALL\r\n")
        drain = asyncio.create_task(self._discard(reader))
        seq = 0
        start = time.monotonic()
        while self.running():
            seq += 1
            writer.write(ak1a_line(seq, "s", time.time()))
            await writer.drain()
            self.spots_sent += 1
            await asyncio.sleep(max(0.0, start + seq / self.args.rate - time.monotonic()))
        drain.cancel()
        writer.close()

    @staticmethod
    async def _discard(reader: asyncio.StreamReader) -> None:
        while await reader.read(65536):
            pass

    async def ws_client(self, index: int) -> None:
        rng = random.Random(index)
        url = f"ws://127.0.0.1:{self.http_port}/ws/firehose"
        while self.running():
            stay = rng.uniform(5, 60)
            try:
                async with websockets.connect(url, max_size=None) as ws:
                    self.ws_sessions += 1
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(min(stay, max(0.0, self.stop_at - time.monotonic()))):
                            async for _ in ws:
                                self.ws_messages += 1
            except (OSError, websockets.WebSocketException):
                self.ws_errors += 1
                await asyncio.sleep(1)
            await asyncio.sleep(rng.uniform(0, 2))

    async def probe(self, client: httpx.AsyncClient) -> None:
        paths = ["/healthz", "/api/spots?limit=50&band=20m"]
        i = 0
        while self.running():
            i += 1
            began = time.monotonic()
            try:
                response = await client.get(self.base + paths[i % 2], timeout=10)
                if response.status_code != 200:
                    self.probe_errors += 1
            except httpx.HTTPError:
                self.probe_errors += 1
            self.latencies.append((time.monotonic() - began) * 1000)
            await asyncio.sleep(0.5)

    async def imports(self, client: httpx.AsyncClient) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        round_no = 0
        while self.running():
            round_no += 1
            began = time.monotonic()
            try:
                response = await client.post(f"{self.base}/api/imports?filename=soak{round_no}.adi",
                                             content=adi_batch(round_no, self.args.qsos), headers=headers,
                                             timeout=60)
                job = response.json()["id"]
                while self.running():
                    status = (await client.get(f"{self.base}/api/imports/{job}", headers=headers)).json()
                    if status["status"] in ("done", "failed"):
                        self.imports_done += status["status"] == "done"
                        self.import_errors += status["status"] != "done"
                        self.import_seconds.append(time.monotonic() - began)
                        break
                    await asyncio.sleep(0.5)
            except (httpx.HTTPError, KeyError, ValueError):
                self.import_errors += 1
            await asyncio.sleep(max(0.0, began + self.args.import_every - time.monotonic()))

    async def sample(self, pids: Any, samples: list[dict[str, Any]]) -> None:
        started = time.monotonic()
        while self.running():
            await asyncio.sleep(self.args.sample)
            window, self.latencies = self.latencies, []
            live = pids()
            samples.append({
                "t": round(time.monotonic() - started, 1), "rss_mb": round(rss_mb(live), 1),
                "open_files": open_files(live), "p50_ms": percentile(window, 0.5),
                "p99_ms": percentile(window, 0.99), "probes": len(window), "spots_sent": self.spots_sent,
                "ws_messages": self.ws_messages, "ws_sessions": self.ws_sessions,
                "imports_done": self.imports_done,
            })
            print(json.dumps(samples[-1]), flush=True)


def create_user(data_dir: Path) -> str:
    env = dict(os.environ, HAMSRV_DATA_DIR=str(data_dir))
    done = subprocess.run([*HAMSRV, "user", "add", "S0AK"], env=env, capture_output=True, text=True,
                          check=True, cwd=REPO_DIR)
    return done.stdout.strip().splitlines()[-1]


def drift(samples: list[dict[str, Any]], key: str) -> dict[str, Any]:
    values = [s[key] for s in samples if s[key] is not None]
    fifth = max(1, len(values) // 5)
    early, late = values[fifth:2 * fifth] or values[:1], values[-fifth:]
    return {"early": round(mean(early), 2), "late": round(mean(late), 2),
            "max": round(max(values), 2), "change": round(mean(late) - mean(early), 2)} if values else {}


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# Soak: {report['minutes']} min, {report['clients']} churning firehose clients, "
             f"{report['rate']} spots/s, an import of {report['qsos']} QSOs every {report['import_every']} s", "",
             "| metric | early (2nd fifth) | late (last fifth) | max | change |", "|---|---|---|---|---|"]
    for key, d in report["drift"].items():
        if d:
            lines.append(f"| {key} | {d['early']} | {d['late']} | {d['max']} | {d['change']:+} |")
    totals = report["totals"]
    lines += ["", "| total | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in totals.items()]
    lines += ["", "| t (s) | RSS MiB | open files | p50 ms | p99 ms | spots sent | WS sessions | imports |",
              "|---|---|---|---|---|---|---|---|"]
    step = max(1, len(report["samples"]) // 30)
    for s in report["samples"][::step]:
        lines.append(f"| {s['t']} | {s['rss_mb']} | {s['open_files']} | {_ms(s['p50_ms'])} | {_ms(s['p99_ms'])} "
                     f"| {s['spots_sent']} | {s['ws_sessions']} | {s['imports_done']} |")
    return "\n".join(lines) + "\n"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def chart(samples: list[dict[str, Any]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t"] / 60 for s in samples]
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    axes[0].plot(t, [s["rss_mb"] for s in samples])
    axes[0].set_ylabel("RSS (MiB)")
    axes[1].plot(t, [s["open_files"] for s in samples])
    axes[1].set_ylabel("open files")
    axes[2].plot(t, [s["p99_ms"] for s in samples], label="p99")
    axes[2].plot(t, [s["p50_ms"] for s in samples], label="p50")
    axes[2].set_ylabel("HTTP probe latency (ms)")
    axes[2].set_xlabel("minutes")
    axes[2].legend()
    axes[0].set_title("hamsrv soak: memory, files and latency over time")
    for ax in axes:
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hamsrv-soak-") as tmp:
        workdir = Path(tmp)
        token = await asyncio.to_thread(create_user, workdir / "data")
        server = await start_server("hamsrv", ServerOptions(cpus=args.server_cpus, hamsrv_command=HAMSRV), workdir)
        samples: list[dict[str, Any]] = []
        try:
            run = Soak(args, server.ws_port, server.ingress_port, token)
            async with httpx.AsyncClient() as client:
                tasks = [run.feed(), run.probe(client), run.imports(client),
                         run.sample(lambda: process_tree(server.process.pid, ("postgres",)), samples)]
                tasks += [run.ws_client(i) for i in range(args.clients)]
                await asyncio.gather(*tasks)
        finally:
            await server.stop()
    report = {
        "minutes": args.minutes, "clients": args.clients, "rate": args.rate, "qsos": args.qsos,
        "import_every": args.import_every, "sample_seconds": args.sample,
        "drift": {k: drift(samples, k) for k in ("rss_mb", "open_files", "p50_ms", "p99_ms")},
        "totals": {"spots sent": run.spots_sent, "WebSocket messages received": run.ws_messages,
                   "WebSocket sessions": run.ws_sessions, "WebSocket errors": run.ws_errors,
                   "imports done": run.imports_done, "import errors": run.import_errors,
                   "probe errors": run.probe_errors,
                   "import seconds (mean)": round(mean(run.import_seconds), 2) if run.import_seconds else None},
        "samples": samples,
    }
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--clients", type=int, default=50, help="firehose clients kept connected (churning)")
    parser.add_argument("--rate", type=float, default=20, help="spots per second through the cluster feed")
    parser.add_argument("--qsos", type=int, default=2000, help="QSOs per import")
    parser.add_argument("--import-every", type=float, default=60)
    parser.add_argument("--sample", type=float, default=10, help="seconds between samples")
    parser.add_argument("--server-cpus", default="0,1")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="soak")
    args = parser.parse_args(argv)
    report = asyncio.run(soak(args))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=1))
    (args.out / f"{args.name}.md").write_text(markdown(report))
    chart(report["samples"], args.out / f"{args.name}.png")
    print(markdown(report))
    sys.exit(0 if not run_failed(report) else 1)


def run_failed(report: dict[str, Any]) -> bool:
    totals = report["totals"]
    return bool(totals["imports done"] == 0 or totals["WebSocket messages received"] == 0)


if __name__ == "__main__":
    main()
