"""The web page in Chromium, Lighthouse-style: bytes transferred on first load and time from navigation to
the first live spot on screen, beside a baseline peer measured in the same run.

    python -m bench.page                 # 7 cold loads of each page
    python -m bench.page --rounds 3

`hamsrv serve` runs as a subprocess (embedded PostgreSQL in a temp data dir) with a trusted feed sending
10 spots/s into its cluster port. Baseline: a minimal static page (no CSS, 12 lines of script) that
opens /ws/firehose and prints the first spot, served by the same hamsrv from the same folder. Each load
is a new browser context (cold cache). The same init script in both pages times the first WebSocket
frame holding a spot, then the next animation frame after the page handled it: "first live spot on
screen". Bytes = the navigation's and every resource's `transferSize` (headers included, WebSocket
frames not) up to that moment. Results: bench/results/page.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.loadgen import SPOTTER, ak1a_line
from bench.servers import REPO_DIR, free_ports, hamsrv_command

RESULTS = Path(__file__).resolve().parent / "results"
BASELINE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>first spot</title></head>
<body><pre id="out">waiting for a spot</pre><script>
const ws = new WebSocket(location.origin.replace("http", "ws") + "/ws/firehose");
ws.onmessage = (m) => {
  const spots = JSON.parse(m.data);
  if (Array.isArray(spots) && spots.length) {
    const s = spots[0];
    document.getElementById("out").textContent = `${s.time} ${s.freq} ${s.dx} ${s.spotter}`;
  }
};
</script></body></html>
"""
# Run in every page before its own scripts: the first spot frame, then the frame painted after it.
PROBE = """
window.__firstLive = null;
const Native = window.WebSocket;
window.WebSocket = function (url, protocols) {
  const ws = new Native(url, protocols);
  ws.addEventListener("message", (m) => {
    if (window.__firstLive !== null || !m.data.startsWith("[") || m.data === "[]") return;
    setTimeout(() => requestAnimationFrame(() => { window.__firstLive = window.__firstLive ?? performance.now(); }));
  });
  return ws;
};
window.WebSocket.prototype = Native.prototype;
Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
"""
MEASURE = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const resources = performance.getEntriesByType("resource");
  const fcp = performance.getEntriesByName("first-contentful-paint")[0];
  return {first_live_spot_ms: window.__firstLive, fcp_ms: fcp ? fcp.startTime : null,
          bytes: nav.transferSize + resources.reduce((n, r) => n + r.transferSize, 0),
          api_bytes: resources.filter(r => r.name.includes("/api/")).reduce((n, r) => n + r.transferSize, 0),
          requests: 1 + resources.length};
}"""


def feed(port: int, stop: threading.Event, rate: float) -> None:
    """Spots into the cluster port as a trusted feed, `rate` a second, until `stop`."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        seen = b""
        while b"login:" not in seen.lower():
            seen += conn.recv(4096)
        conn.sendall(f"{SPOTTER}\r\n".encode())
        time.sleep(0.5)
        seq = 0
        while not stop.is_set():
            conn.sendall(ak1a_line(seq, "page", time.time()))
            seq += 1
            stop.wait(1 / rate)


def web_size() -> dict[str, int]:
    files = sorted((REPO_DIR / "web").iterdir())
    return {"files": len(files), "bytes": sum(f.stat().st_size for f in files)}


def measure(rounds: int, work: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    site = work / "web"
    shutil.copytree(REPO_DIR / "web", site)
    (site / "baseline.html").write_text(BASELINE)
    http, cluster = free_ports(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAMSRV_")}
    env.update(HAMSRV_DATA_DIR=str(work / "data"), HAMSRV_WEB_DIR=str(site), HAMSRV_CLUSTER_FEEDS="127.0.0.1")
    log = (work / "serve.log").open("wb")
    server = subprocess.Popen([*hamsrv_command(), "serve", "--http", f"127.0.0.1:{http}", "--cluster",
                               f"127.0.0.1:{cluster}"], cwd=REPO_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    stop = threading.Event()
    feeder = threading.Thread(target=feed, args=(cluster, stop, 10.0), daemon=True)
    pages = {"hamsrv page": f"http://127.0.0.1:{http}/", "baseline": f"http://127.0.0.1:{http}/web/baseline.html"}
    loads: dict[str, list[dict[str, Any]]] = {name: [] for name in pages}
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{http}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("hamsrv did not start: " + (work / "serve.log").read_text()[-2000:])
            time.sleep(0.3)
        feeder.start()
        time.sleep(3)  # some history in the ring, as on a real server
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium") or "chromium",
                                        args=["--headless", "--no-sandbox", "--disable-gpu"])
            for n in range(rounds + 1):  # round 0 warms the server and the browser up, and is not kept
                for name, url in (pages.items() if n % 2 else reversed(pages.items())):
                    context = browser.new_context(viewport={"width": 1280, "height": 800})
                    context.add_init_script(PROBE)
                    page = context.new_page()
                    page.goto(url)
                    page.wait_for_function("window.__firstLive !== null", timeout=30_000)
                    result = page.evaluate(MEASURE)
                    context.close()
                    if n:
                        loads[name].append(result)
            browser.close()
    finally:
        stop.set()
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    summary = {}
    for name, runs in loads.items():
        summary[name] = {key: round(statistics.median(r[key] for r in runs), 1)
                         for key in ("first_live_spot_ms", "fcp_ms", "bytes", "api_bytes", "requests")}
    ours, base = summary["hamsrv page"], summary["baseline"]
    return {
        "rounds": rounds, "feed_spots_per_s": 10, "host": platform.node(), "cpus": os.cpu_count(),
        "load_average": os.getloadavg(), "python": platform.python_version(), "web": web_size(),
        "loads": loads, "median": summary,
        "ratio_first_live_spot": round(ours["first_live_spot_ms"] / base["first_live_spot_ms"], 2),
        "ratio_bytes": round(ours["bytes"] / base["bytes"], 2),
    }


def markdown(report: dict[str, Any]) -> str:
    m = report["median"]
    lines = [
        "# The web page: first load in Chromium",
        "",
        f"Medians of {report['rounds']} cold loads each (new browser context), alternating, with a feed of "
        f"{report['feed_spots_per_s']} spots/s; {report['cpus']} CPUs shared, load average "
        f"{', '.join(f'{x:.1f}' for x in report['load_average'])} at the end. `web/` is {report['web']['files']} "
        f"files, {report['web']['bytes']:,} bytes uncompressed.",
        "",
        "| page | first live spot on screen (ms) | first contentful paint (ms) | bytes transferred | of which API "
        "answers (spot history, /api/me) | requests |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("hamsrv page", "baseline"):
        r = m[name]
        lines.append(f"| {name} | {r['first_live_spot_ms']:.0f} | {r['fcp_ms']:.0f} | {r['bytes']:,.0f} | "
                     f"{r['api_bytes']:,.0f} | {r['requests']:.0f} |")
    lines += ["", f"Ratios hamsrv page / baseline: first live spot {report['ratio_first_live_spot']}x, bytes "
              f"{report['ratio_bytes']}x. Baseline: a static page that opens /ws/firehose and prints the first spot "
              "(no history, no CSS, no modules). The hamsrv page also loads the spot history, who is signed in, "
              "and the modules of the spots, sign-in and solar views (the others load on first use); hamsrv sends "
              "the files uncompressed.", ""]
    return "\n".join(lines)


def write_chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["hamsrv page", "baseline"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2))
    for axis, key, title in ((left, "first_live_spot_ms", "first live spot (ms)"), (right, "bytes", "bytes transferred")):
        values = [[r[key] for r in report["loads"][n]] for n in names]
        axis.boxplot(values, tick_labels=names)
        axis.set_title(title)
        axis.set_ylim(bottom=0)
    fig.suptitle(f"Cold loads in Chromium ({report['rounds']} each)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--report-only", action="store_true", help="redraw the .md and .png from the .json")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        report = json.loads((args.out / "page.json").read_text())
    else:
        with tempfile.TemporaryDirectory(prefix="bench-page-") as work:
            report = measure(args.rounds, Path(work))
        (args.out / "page.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "page.md").write_text(markdown(report))
    write_chart(report, args.out / "page.png")
    print(markdown(report), file=sys.stderr)


if __name__ == "__main__":
    main()
