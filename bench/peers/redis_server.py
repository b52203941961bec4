"""A real `redis-server` for the tests and bench/, on a unix socket in a temporary folder; it can be stopped and
started again on the same socket to test outages."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path


class RedisServer:
    def __init__(self, folder: Path):
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server; make test installs it)")
        self.binary = binary
        self.socket = folder / "redis.sock"
        self.url = f"unix://{self.socket}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [self.binary, "--port", "0", "--unixsocket", str(self.socket), "--save", "", "--appendonly", "no",
             "--dir", str(self.socket.parent)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None
            self.socket.unlink(missing_ok=True)
