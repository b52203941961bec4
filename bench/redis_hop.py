"""Latency of the Redis hop between two hamsrv nodes (issue 20): spots enter node A's cluster port,
clients read them from node A (no hop) and from node B (through Redis), in the same run.

    python -m bench.redis_hop [--rate 1000] [--clients 40] [--duration 10]

Writes bench/results/redis-hop.{json,md}. The target: the hop adds p99 <= 20 ms at 1,000 spots/s.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.firehose import MATRICES, measure_run, parse_args
from bench.loadgen import pin_to_cpus, raise_fd_limit
from bench.peers.redis_server import RedisServer
from bench.servers import ServerOptions, start_server

RESULTS = Path(__file__).resolve().parent / "results"


async def run(rate: float, clients: int, window: float) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bench-redis-hop-"))
    redis = RedisServer(folder)
    redis.start()
    nodes = []
    try:
        for name in ("a", "b"):
            workdir = folder / name
            workdir.mkdir()
            options = ServerOptions(cpus="0", env={"HAMSRV_REDIS_URL": redis.url, "HAMSRV_NODE_ID": name})
            nodes.append(await start_server("hamsrv", options, workdir))
        a, b = nodes
        args = parse_args(["--latency-clients", str(clients)])
        timing = dataclasses.replace(MATRICES["quick"][1], window=window)
        results = {}
        for label, reader in (("same node", a), ("through Redis", b)):
            view = dataclasses.replace(a, ws_port=reader.ws_port,
                                       measured_pids=lambda: a.measured_pids() + b.measured_pids())
            results[label] = await measure_run(view, clients, rate, timing, args)
        return results
    finally:
        for node in nodes:
            await node.stop()
        redis.stop()
        shutil.rmtree(folder, ignore_errors=True)


def table(results: dict[str, Any], rate: float) -> str:
    lines = [f"Redis hop between two hamsrv nodes, {rate:g} spots/s (spots enter node A's cluster port)", "",
             "| clients read from | delivered | p50 ms | p99 ms |", "|---|---|---|---|"]
    for label, r in results.items():
        lines.append(f"| {label} | {r['delivered_fraction']:.2%} | {r['p50_ms']} | {r['p99_ms']} |")
    hop = results["through Redis"]["p99_ms"] - results["same node"]["p99_ms"]
    lines += ["", f"The hop adds {hop} ms at p99 (target: <= 20 ms)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--duration", type=float, default=10.0)
    options = parser.parse_args()
    raise_fd_limit()
    pin_to_cpus("1")
    results = asyncio.run(run(options.rate, options.clients, options.duration))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "redis-hop.json").write_text(json.dumps(results, indent=1))
    text = table(results, options.rate)
    (RESULTS / "redis-hop.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
