"""How the bench starts, feeds, measures and stops each firehose server.

hamsrv takes spots on its real ingress (the DX-cluster port, as a feed); the peers take them on
their idiomatic ingress (a TCP line socket for websockets and Node, HTTP POST for nchan). Every
server runs pinned to the server CPUs with `taskset`, in its own session so it can be stopped whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.procstat import process_tree

BENCH_DIR = Path(__file__).resolve().parent
PEERS_DIR = BENCH_DIR / "peers"
REPO_DIR = BENCH_DIR.parent
NODE_DIR = PEERS_DIR / "node"
NGINX = "/usr/sbin/nginx"
NCHAN_MODULE_DIRS = (Path("/usr/lib/nginx/modules"), Path("/usr/share/nginx/modules"))
PORT_RANGE = (20000, 32000)  # below the ephemeral range, where client sockets would collide
SERVER_NAMES = ("hamsrv", "websockets", "node", "nchan", "prototype")
# The design's throw-away trio prototype (shared/prototypes, not part of this repo): the floor that
# DESIGN.md measured, run here so that hamsrv is compared with it on the same machine in the same run.
PROTOTYPE = REPO_DIR.parent / "shared" / "prototypes" / "firehose_prototype.py"
PEER_NAMES = SERVER_NAMES[1:]
# Asked for by name only: hamsrv with two worker processes sharing the shared-memory ring (issue 20).
VARIANT_NAMES = ("hamsrv-w2",)


class ServerUnavailable(Exception):
    """The server cannot run on this machine (not installed, not built yet, failed to start)."""


@dataclass
class ServerOptions:
    cpus: str = "0"
    hamsrv_command: list[str] = field(default_factory=list)
    start_timeout: float = 90.0
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the server


@dataclass
class RunningServer:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    ws_port: int
    ws_path: str
    ingress: str  # loadgen publisher --ingress: cluster | line | http
    ingress_port: int
    ingress_path: str
    measured: str  # which processes count as "the server"
    measured_pids: Callable[[], list[int]]

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    async def stop(self) -> None:
        """SIGTERM (hamsrv drains, nginx exits fast), then SIGKILL the whole session if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            while self.process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def free_ports(count: int) -> list[int]:
    """Ports that bind on 127.0.0.1 now, searched from a random point of PORT_RANGE."""
    low, high = PORT_RANGE
    start = low + int.from_bytes(os.urandom(2), "big") % (high - low)
    ports: list[int] = []
    for offset in range(high - low):
        port = low + (start - low + offset) % (high - low)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise ServerUnavailable("no free ports below the ephemeral range")


def hamsrv_command() -> list[str]:
    """hamsrv from this checkout (the server runs with this repository as its working folder), else
    whatever `hamsrv` script is installed."""
    if (REPO_DIR / "hamsrv" / "cli.py").exists():
        return [sys.executable, "-m", "hamsrv.cli"]
    if shutil.which("hamsrv"):
        return ["hamsrv"]
    raise ServerUnavailable("hamsrv is not runnable (no hamsrv/cli.py here, no `hamsrv` command)")


def nchan_module() -> Path:
    for folder in NCHAN_MODULE_DIRS:
        if (folder / "ngx_nchan_module.so").exists():
            return folder / "ngx_nchan_module.so"
    raise ServerUnavailable("ngx_nchan_module.so not found (apt-get install libnginx-mod-nchan)")


def ensure_node_peer() -> None:
    """Install the Node peer's locked dependencies on first use (node_modules is not committed)."""
    if shutil.which("node") is None:
        raise ServerUnavailable("node is not installed")
    if not (NODE_DIR / "node_modules" / "ws").is_dir():
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise ServerUnavailable(f"npm ci failed in {NODE_DIR}: {done.stderr[-500:]}")


async def port_accepts(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


async def healthz_ok(port: int) -> bool:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        status = await asyncio.wait_for(reader.readline(), 5)
        return status.split(b" ")[1:2] == [b"200"]
    except (TimeoutError, OSError):
        return False
    finally:
        writer.close()


async def is_ready(server: RunningServer) -> bool:
    """Both ports accept, and hamsrv also answers GET /healthz with 200 (database migrated)."""
    if server.name.startswith("hamsrv") and not await healthz_ok(server.ws_port):
        return False
    return await port_accepts(server.ws_port) and await port_accepts(server.ingress_port)


async def start_server(name: str, options: ServerOptions, workdir: Path) -> RunningServer:
    """Start server `name` pinned to options.cpus and return once it accepts subscribers."""
    ws_port, ingress_port = free_ports(2)
    env = dict(os.environ) | options.env
    exclude: tuple[str, ...] = ()
    if name in ("hamsrv", "hamsrv-w2"):
        if name == "hamsrv-w2":
            env["HAMSRV_WORKERS"] = "2"
        command = (options.hamsrv_command or hamsrv_command()) + [
            "serve", "--http", f"127.0.0.1:{ws_port}", "--cluster", f"127.0.0.1:{ingress_port}"]
        # The load generator connects from a few 127.0.0.x addresses: lift the per-IP connection limit.
        env.update(HAMSRV_DATA_DIR=str(workdir / "data"), HAMSRV_CLUSTER_FEEDS="127.0.0.1",
                   HAMSRV_WS_PER_IP="100000")
        ingress, ingress_path, ws_path = "cluster", "", "/ws/firehose"
        exclude = ("postgres",)
        measured = "the hamsrv process and its children except embedded PostgreSQL"
    elif name == "websockets":
        command = [sys.executable, str(PEERS_DIR / "websockets_server.py"),
                   "--ws-port", str(ws_port), "--ingress-port", str(ingress_port)]
        ingress, ingress_path, ws_path = "line", "", "/ws/firehose"
        measured = "the Python process"
    elif name == "node":
        ensure_node_peer()
        command = ["node", str(NODE_DIR / "server.js"),
                   "--ws-port", str(ws_port), "--ingress-port", str(ingress_port)]
        ingress, ingress_path, ws_path = "line", "", "/ws/firehose"
        measured = "the node process"
    elif name == "nchan":
        config = (PEERS_DIR / "nchan.conf.template").read_text().format(
            module=nchan_module(), tmp=workdir, host="127.0.0.1", port=ws_port,
            nofile=20000, connections=16384)
        (workdir / "nginx.conf").write_text(config)
        command = [NGINX, "-c", str(workdir / "nginx.conf"), "-p", str(workdir), "-e",
                   str(workdir / "error.log")]
        ingress, ingress_path, ws_path = "http", "/pub", "/ws/firehose"
        ingress_port = ws_port
        measured = "nginx master and worker"
    elif name == "prototype":
        if not PROTOTYPE.exists():
            raise ServerUnavailable(f"{PROTOTYPE} not found (it lives in shared/, beside the repo)")
        command = [sys.executable, str(PROTOTYPE), "--ws-port", str(ws_port), "--pub-port", str(ingress_port),
                   "--send", "direct", "--tick", "50", "--batch", "array"]
        ingress, ingress_path, ws_path = "http", "/pub", "/ws/firehose"
        measured = "the Python process"
    else:
        raise ServerUnavailable(f"unknown server {name!r}; choose from {', '.join(SERVER_NAMES)}")
    log = workdir / f"{name}.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(["taskset", "-c", options.cpus, *command], env=env, cwd=REPO_DIR,
                                   stdout=log_file, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    server = RunningServer(name, process, log, ws_port, ws_path, ingress, ingress_port,
                           ingress_path, measured, lambda: process_tree(process.pid, exclude))
    deadline = time.monotonic() + options.start_timeout
    while not await is_ready(server):
        if process.poll() is not None or time.monotonic() > deadline:
            await server.stop()
            raise ServerUnavailable(f"{name} did not become ready:\n{server.log_tail()}")
        await asyncio.sleep(0.2)
    return server
