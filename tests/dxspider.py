"""A real DXSpider node for tests: shared/peers/dxspider/run.sh in a temp dir, on free ports, stopped
by its PID. A missing Perl module fails the test loudly (scripts/install-test-deps installs them)."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.testdata import TESTDATA

RUN_SH = TESTDATA.parent / "peers" / "dxspider" / "run.sh"
PERL_MODULES = ("EV", "Mojolicious", "JSON", "JSON::XS", "Data::Structure::Util", "Math::Round",
                "Net::CIDR::Lite", "Curses", "Date::Parse", "Digest::SHA")
START_TIMEOUT = 60.0


def _free_pair() -> int:
    """A port below the ephemeral range whose next port is free too (run.sh uses PORT+1 internally)."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        try:
            for p in (port, port + 1):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for DXSpider")


class DxSpider:
    """`run.sh DIR PORT NODECALL PEERCALL...` as a subprocess in its own process group."""

    def __init__(self, root: Path, node_call: str = "GB7TST-2", peers: tuple[str, ...] = ("GB7HAM",)):
        self.root, self.node_call, self.peers = root, node_call, peers
        self.sysop = node_call.split("-")[0]  # run.sh makes the node call without SSID the sysop alias
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> DxSpider:
        missing = subprocess.run(["perl", "-e", "".join(f"use {m};" for m in PERL_MODULES)],
                                 capture_output=True, text=True)
        if missing.returncode != 0:
            raise RuntimeError(f"DXSpider's Perl modules are missing (run scripts/install-test-deps): "
                               f"{missing.stderr.strip()[:300]}")
        self.port = _free_pair()
        self.log = open(self.root / "run.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            ["bash", str(RUN_SH), str(self.root / "node"), str(self.port), self.node_call, *self.peers],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"DXSpider exited with {self.process.returncode}: "
                                   f"{(self.root / 'run.log').read_text(errors='replace')[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"DXSpider did not listen on {self.port} within {START_TIMEOUT:g} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # its process group is its own PID
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
