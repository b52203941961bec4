"""Real processes for the relay tests: rigctld (Hamlib dummy rig) and relay/relay.py itself."""

from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RELAY_SCRIPT = REPO / "relay" / "relay.py"
RIGCTLD = "/usr/bin/rigctld"
ORIGIN = "https://hamsrv.example"
TOKEN = "test-pairing-token-0123"


def _wait_until_accepting(port: int, proc: subprocess.Popen[bytes], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def _stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """rigctld 4.5 ignores SIGTERM while idle in accept(), so kill outright."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


@dataclass
class Rig:
    """A running rigctld plus a direct (relay-free) way to read and set it."""

    proc: subprocess.Popen[bytes]
    port: int
    conn: socket.socket | None = None

    def plain(self, line: str, reply_lines: int) -> list[str]:
        """Plain-protocol command straight to rigctld (independent of the relay's parser).

        One kept connection: rigctld 4.5.4 resets a few percent of freshly accepted ones.
        """
        if self.conn is None:
            self.conn = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self.conn.sendall(f"{line}\n".encode())
        data = b""
        while data.count(b"\n") < reply_lines:
            chunk = self.conn.recv(4096)
            assert chunk, f"rigctld closed while answering {line!r}"
            data += chunk
        return data.decode("latin-1").splitlines()

    def set(self, line: str) -> None:
        assert self.plain(line, 1) == ["RPRT 0"], f"rigctld refused {line!r}"

    def frequency(self) -> int:
        return int(float(self.plain("f", 1)[0]))

    def mode(self) -> str:
        return self.plain("m", 2)[0]


def start_rigctld(*extra: str) -> Rig:
    """Start rigctld -m 1 (dummy) on a free port below 32768; fail loudly if it is missing."""
    if shutil.which(RIGCTLD) is None:
        pytest.fail(f"{RIGCTLD} not found: install Debian package libhamlib-utils (Hamlib 4.5)")
    rng = random.Random()
    for _attempt in range(20):
        port = rng.randrange(20_000, 32_000)
        proc = subprocess.Popen(
            [RIGCTLD, "-m", "1", *extra, "-T", "127.0.0.1", "-t", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if _wait_until_accepting(port, proc):
            return Rig(proc, port)
        _stop(proc)
    pytest.fail("could not start rigctld on any free port")


def stop_rig(rig: Rig) -> None:
    if rig.conn is not None:
        rig.conn.close()
    _stop(rig.proc)


@pytest.fixture(scope="session")
def rig() -> Iterator[Rig]:
    rig = start_rigctld("-P", "RIG")
    try:
        yield rig
    finally:
        stop_rig(rig)


@dataclass
class Relay:
    proc: subprocess.Popen[str]
    port: int
    first_lines: list[str]

    def call(
        self,
        path: str,
        *,
        method: str = "GET",
        token: str | None = TOKEN,
        origin: str | None = ORIGIN,
        host: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, http.client.HTTPMessage, dict[str, object] | None]:
        """One HTTP request with full control over Host, Origin and token; returns (status, headers, json)."""
        sent = {"Host": host or f"127.0.0.1:{self.port}"}
        if token is not None:
            sent["X-Relay-Token"] = token
        if origin is not None:
            sent["Origin"] = origin
        sent.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            conn.request(method, path, headers=sent)
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        return response.status, response.headers, json.loads(body) if body else None


def start_relay(*args: str, token: str | None = TOKEN, lines: int = 1) -> Relay:
    """Run relay/relay.py as a real subprocess (isolated interpreter, other cwd) on port 0."""
    command = [sys.executable, "-I", str(RELAY_SCRIPT), "--listen", "127.0.0.1:0", "--origin", ORIGIN, *args]
    if token is not None:
        command += ["--token", token]
    env = {name: value for name, value in os.environ.items() if name != "HAMSRV_RELAY_TOKEN"}
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd="/", env=env
    )
    assert proc.stdout is not None
    first_lines = [proc.stdout.readline() for _ in range(lines)]
    if not first_lines[0].startswith("hamsrv-relay listening on http://127.0.0.1:"):
        _stop(proc)
        pytest.fail(f"relay did not start: {first_lines!r}")
    port = int(first_lines[0].split("http://127.0.0.1:")[1].split()[0])
    return Relay(proc, port, first_lines)


def stop_relay(relay: Relay) -> None:
    _stop(relay.proc)
    if relay.proc.stdout:
        relay.proc.stdout.close()


@pytest.fixture(scope="module")
def relay(rig: Rig) -> Iterator[Relay]:
    """The relay under test, with a rate limit generous enough for the many requests below."""
    relay = start_relay("--rigctld", f"127.0.0.1:{rig.port}", "--rate", "1000", "--burst", "1000")
    try:
        yield relay
    finally:
        stop_relay(relay)
