"""What signing in costs per request: the session lookup against an API token, and an Idempotency-Key
on a POST against the same POST without one (issue 16).

    python -m bench.identity [--requests 400]

Runs the real app (public listener, quart, embedded PostgreSQL) in this process and one keep-alive
client; the variants take turns request by request, so drift on a shared machine hits them alike. Writes
bench/results/identity.{json,md,png}: median and p90 latency per request and each variant's ratio to
its baseline from the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import trio

from hamsrv.db.database import Database
from hamsrv.identity import sessions
from hamsrv.identity.policy import Policy
from tests.api import running_api

RESULTS = Path(__file__).resolve().parent / "results"
# (variant, its baseline)
VARIANTS = [("GET /api/me, API token", None), ("GET /api/me, session cookie", "GET /api/me, API token"),
            ("POST /api/qsos", None), ("POST /api/qsos + Idempotency-Key", "POST /api/qsos")]


def qso(n: int) -> dict[str, str]:
    day = date(2020, 1, 1) + timedelta(days=n // 1440)
    return {"call": "IP0TRC", "qso_date": day.strftime("%Y%m%d"),
            "time_on": f"{n % 1440 // 60:02d}{n % 60:02d}", "band": "20m", "mode": "CW"}


async def measure(requests: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name, _ in VARIANTS}
    with tempfile.TemporaryDirectory() as folder:
        db = await Database.open(None, Path(folder))
        try:
            async with trio.open_nursery() as nursery:
                policy = Policy(api_rate=1e6)  # the bench measures the checks, not the refusals
                async with running_api(db, nursery, identity=policy) as api:
                    user = await sessions.ensure_user(db, "W1AW", 2)
                    session = await sessions.start_session(db, user["id"], "email", None, timedelta(days=1))
                    bearer = {"Authorization": f"Bearer {api.token}"}
                    counter = iter(range(10**9))
                    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
                        calls: dict[str, Callable[[], Awaitable[Any]]] = {
                            VARIANTS[0][0]: lambda: client.get("/api/me", headers=bearer),
                            VARIANTS[1][0]: lambda: client.get("/api/me", cookies={sessions.COOKIE: session}),
                            VARIANTS[2][0]: lambda: client.post("/api/qsos", json=qso(next(counter)),
                                                                headers=bearer),
                            VARIANTS[3][0]: lambda: client.post(
                                "/api/qsos", json=qso(n := next(counter)),
                                headers={**bearer, "Idempotency-Key": f"bench-{n}"}),
                        }
                        for call in calls.values():  # warm-up
                            for _ in range(20):
                                (await call()).raise_for_status()
                        for _ in range(requests):  # one of each in turn: noise hits all alike
                            for name, call in calls.items():
                                start = time.perf_counter()
                                response = await call()
                                times[name].append(time.perf_counter() - start)
                                response.raise_for_status()
                nursery.cancel_scope.cancel()
        finally:
            await db.close()
    return times


def summarize(times: dict[str, list[float]]) -> list[dict[str, Any]]:
    medians = {name: statistics.median(values) for name, values in times.items()}
    rows = []
    for name, baseline in VARIANTS:
        values = sorted(times[name])
        rows.append({"variant": name, "requests": len(values), "median_ms": round(medians[name] * 1000, 3),
                     "p90_ms": round(values[int(len(values) * 0.9)] * 1000, 3), "baseline": baseline,
                     "ratio": round(medians[name] / medians[baseline], 3) if baseline else None})
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    out = ["Per-request latency through the real app, one keep-alive client, same run (bench.identity)", "",
           "| variant | requests | median ms | p90 ms | ratio to baseline |", "|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['ratio']:.2f} x {r['baseline']}" if r["baseline"] else "baseline"
        out.append(f"| {r['variant']} | {r['requests']} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | {ratio} |")
    return "\n".join(out) + "\n"


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.barh([r["variant"] for r in rows], [r["median_ms"] for r in rows], color=["#888", "#3a7", "#888", "#37a"])
    ax.set_xlabel("median latency per request (ms)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="per variant")
    args = parser.parse_args()
    times = trio.run(measure, args.requests)
    rows = summarize(times)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "identity.json").write_text(json.dumps({"rows": rows, "requests": args.requests}, indent=1))
    table = markdown(rows)
    (RESULTS / "identity.md").write_text(table)
    chart(rows, RESULTS / "identity.png")
    print(table)


if __name__ == "__main__":
    main()
