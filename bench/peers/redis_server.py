"""A real `redis-server` for the tests and bench/, on a unix socket in a temporary folder; it can be stopped and
started again on the same socket to test outages."""

from __future__ import annotations

import shutil
import socket
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


def _binds(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port(also_free: int = 0) -> int:
    """A TCP port free on 127.0.0.1 now (and `port + also_free` too, for a Cluster node's bus port)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if not also_free or (port + also_free <= 65535 and _binds(port + also_free)):
            return port


def _wait_for_port(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"redis-server on port {port} did not start")
        time.sleep(0.02)


class RedisGroup:
    """Several real redis-server processes on TCP ports: a master watched by a Sentinel, or a three-master
    Cluster. Used to test that the client finds the right server; stopped together."""

    def __init__(self, folder: Path):
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server; make test installs it)")
        self.binary, self.folder = binary, folder
        self.procs: list[subprocess.Popen[bytes]] = []

    def _start(self, port: int, *args: str, config: Path | None = None) -> None:
        workdir = self.folder / str(port)
        workdir.mkdir(parents=True, exist_ok=True)
        command = [self.binary] + ([str(config)] if config else []) + [
            "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir),
            *args]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        _wait_for_port(proc, port)

    def start_sentinel(self, master_name: str = "spots") -> tuple[int, int]:
        """A master and one Sentinel watching it; returns (master port, sentinel port)."""
        master, sentinel = _free_port(), _free_port()
        self._start(master)
        config = self.folder / "sentinel.conf"  # Sentinel rewrites its config file: it must be writable
        config.write_text(f"sentinel monitor {master_name} 127.0.0.1 {master} 1\n")
        self._start(sentinel, "--sentinel", config=config)
        return master, sentinel

    def start_cluster(self, masters: int = 3) -> list[int]:
        """`masters` Cluster nodes sharing the 16384 slots; returns their ports once the Cluster is ok."""
        ports = [_free_port(also_free=10000) for _ in range(masters)]
        for port in ports:
            self._start(port, "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf")
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed (Debian package redis-tools)")
        subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        deadline = time.monotonic() + 20
        while True:
            states = [subprocess.run([cli, "-p", str(p), "cluster", "info"], capture_output=True, text=True,
                                     timeout=10).stdout for p in ports]
            if all("cluster_state:ok" in s for s in states):
                return ports
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(10)
        self.procs.clear()
