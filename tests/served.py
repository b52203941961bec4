"""`hamsrv serve` as a real subprocess for abuse and fault tests: its own ports, data dir and database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.ingest.test_kill_resume import as_url
from tests.test_serve import free_port
from tests.testdata import REPO


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    url: str
    cluster_port: int
    log: Path

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


def start_serve(tmp_path: Path, database_url: str, **settings: str) -> Served:
    """Start and wait for GET /healthz = 200; the cluster port takes raw spots from 127.0.0.1 (a feed)."""
    http, cluster = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAMSRV_")}
    env.update(HAMSRV_DATA_DIR=str(tmp_path / "var"), HAMSRV_DATABASE_URL=as_url(database_url),
               HAMSRV_CLUSTER_FEEDS="127.0.0.1", HAMSRV_WS_PER_IP="5000", **settings)
    log = tmp_path / "serve.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "hamsrv.cli", "serve", "--http", f"127.0.0.1:{http}",
                                 "--cluster", f"127.0.0.1:{cluster}"], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    served = Served(proc, f"http://127.0.0.1:{http}", cluster, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not served.alive():
            raise AssertionError(f"hamsrv serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(served.url + "/healthz", timeout=2).status_code == 200:
                return served
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    served.stop()
    raise AssertionError(f"hamsrv serve did not get healthy: {log.read_text()[-2000:]}")
