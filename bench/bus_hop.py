"""Latency of the user bus's NOTIFY hop (issue 21): the same cluster announcements reach pages on the
firehose (the board's in-process listener, the baseline) and on the user bus (PostgreSQL NOTIFY, then
LISTEN), in the same run of one hamsrv process with its embedded PostgreSQL.

    python -m bench.bus_hop [--count 200] [--pages 8] [--gap 0.02]

Telnet users on the real cluster port announce `count` times, `gap` seconds apart (40 users, 5
announcements each: the port's rate limit); `pages` firehose clients and `pages` bus pages receive
every announcement. Writes bench/results/bus-hop.{json,md,png}. The clients share the server's process
and CPU, the same for both paths.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from contextlib import AsyncExitStack
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from hamsrv import config as config_mod
from hamsrv.app import Running, run
from hamsrv.identity.tokens import add_user, issue_token

RESULTS = Path(__file__).resolve().parent / "results"
PATHS = ("firehose (in-process)", "user bus (NOTIFY)")
PER_USER = 5  # the cluster port's posts a minute per user
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


async def _announcer(port: int, index: int) -> trio.SocketStream:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(f"M{index // 26}{LETTERS[index % 26]}BC\r\n".encode())
    seen = b""
    while b"hamsrv >" not in seen:
        seen += await stream.receive_some(4096)
    return stream


async def _receive(ws: WebSocketConnection, sent: dict[int, float], into: list[float]) -> None:
    while True:
        message = json.loads(await ws.get_message())
        if isinstance(message, dict) and message.get("type") == "announce":
            into.append(trio.current_time() - sent[int(message["text"].split()[0][2:])])


async def measure(running: Running, count: int, pages: int, gap: float) -> dict[str, list[float]]:
    token = await issue_token(running.db, (await add_user(running.db, "W1AW"))["id"])
    sent: dict[int, float] = {}
    got: dict[str, list[float]] = {path: [] for path in PATHS}
    urls = {PATHS[0]: f"ws://127.0.0.1:{running.http_port}/ws/firehose",
            PATHS[1]: f"ws://127.0.0.1:{running.http_port}/websocket?token={token}"}
    announcers = [await _announcer(running.cluster_port, i) for i in range(-(-count // PER_USER))]
    async with AsyncExitStack() as stack:
        clients = [(path, await stack.enter_async_context(open_websocket_url(url)))
                   for path, url in urls.items() for _ in range(pages)]
        async with trio.open_nursery() as nursery:
            for path, ws in clients:
                nursery.start_soon(_receive, ws, sent, got[path])
            await trio.sleep(0.5)
            await _announce(announcers, count, gap, sent)
            with trio.move_on_after(10):
                while any(len(got[path]) < count * pages for path in PATHS):
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    for stream in announcers:
        await stream.aclose()
    return got


async def _announce(announcers: list[trio.SocketStream], count: int, gap: float, sent: dict[int, float]) -> None:
    for n in range(count):
        sent[n] = trio.current_time()
        await announcers[n // PER_USER].send_all(f"announce n={n} bench\r\n".encode())
        await trio.sleep(gap)


def summary(latencies: list[float], expected: int) -> dict[str, Any]:
    ms = sorted(x * 1000 for x in latencies)
    if not ms:
        return {"delivered": 0, "expected": expected}
    return {"delivered": len(ms), "expected": expected, "p50_ms": round(statistics.median(ms), 2),
            "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2), "max_ms": round(ms[-1], 2)}


def table(report: dict[str, Any]) -> str:
    lines = [f"Cluster announcements to pages: {report['count']} announcements, {report['pages']} clients per path, "
             f"{report['gap'] * 1000:g} ms apart", "",
             "| path | delivered | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|"]
    for path in PATHS:
        r = report["results"][path]
        lines.append(f"| {path} | {r['delivered']}/{r['expected']} | {r.get('p50_ms', '-')} | "
                     f"{r.get('p99_ms', '-')} | {r.get('max_ms', '-')} |")
    base, bus = (report["results"][p] for p in PATHS)
    if "p50_ms" in base and "p50_ms" in bus:
        lines += ["", f"The NOTIFY hop adds {bus['p50_ms'] - base['p50_ms']:.2f} ms at p50 and "
                      f"{bus['p99_ms'] - base['p99_ms']:.2f} ms at p99 (bus/firehose p50 ratio "
                      f"{bus['p50_ms'] / max(base['p50_ms'], 0.01):.1f}x)."]
    return "\n".join(lines) + "\n"


def chart(got: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for label, latencies in got.items():
        ms = sorted(x * 1000 for x in latencies)
        axis.plot(ms, [(i + 1) / len(ms) for i in range(len(ms))], label=label)
    axis.set_xscale("log")
    axis.set_xlabel("announce sent on the cluster port -> page received (ms, log)")
    axis.set_ylabel("fraction of deliveries")
    axis.grid(True, alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


async def main_async(count: int, pages: int, gap: float) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-bus-") as folder:
        config = replace(config_mod.load({}, env={}), data_dir=Path(folder), syncs="",
                         http=config_mod.Bind("127.0.0.1", 0), cluster=config_mod.Bind("127.0.0.1", 0),
                         cluster_feeds="127.0.0.1")  # the announcers all come from 127.0.0.1
        async with trio.open_nursery() as nursery:
            running: Running = await nursery.start(partial(run, config, handle_signals=False))
            got = await measure(running, count, pages, gap)
            running.shutdown.set()
    report = {"count": count, "pages": pages, "gap": gap,
              "results": {path: summary(got[path], count * pages) for path in PATHS}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bus-hop.json").write_text(json.dumps(report, indent=1) + "\n")
    text = table(report)
    (RESULTS / "bus-hop.md").write_text(text)
    chart(got, RESULTS / "bus-hop.png")
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--pages", type=int, default=8)
    parser.add_argument("--gap", type=float, default=0.02)
    options = parser.parse_args()
    trio.run(main_async, options.count, options.pages, options.gap)


if __name__ == "__main__":
    main()
