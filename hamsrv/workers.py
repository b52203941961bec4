"""`hamsrv serve --workers N`: a supervisor and N worker processes sharing one spot ring in shared memory.

Every worker accepts on the public HTTP port (SO_REUSEPORT) and fans spots out exactly as a single
process does. Worker 0, the primary, also owns spot ingress (cluster port, links, feeds, QSO NOTIFY, and
spots POSTed to any worker, which reach it over a unix socket): once per tick it appends the new spots,
already numbered and encoded, to the shared ring and wakes the other workers through a pipe each. They
copy the new records into their own ring by sequence number, lock-free (see `firehose/shmring.py`).

The supervisor owns what must outlive a worker: the shared ring, the pipes, the intake socket's folder
and the database URL. It restarts a dead worker (its clients reconnect and resume with `since`; a new
primary reloads the ring's history and continues its numbering), forwards SIGTERM for a clean drain, and
writes each worker's state to a status file that `/healthz` and `/metrics` show.
"""

from __future__ import annotations

import contextlib
import json
import logging
import operator
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgpack
import trio

from hamsrv.config import Config
from hamsrv.db.database import Database, conninfo_url
from hamsrv.db.embedded import start_embedded
from hamsrv.errors import ConfigError
from hamsrv.firehose.bridge import spot_fields, spot_from_fields
from hamsrv.firehose.hub import Hub
from hamsrv.firehose.ring import RingEntry
from hamsrv.firehose.shmring import Lapped, SharedRing
from hamsrv.model import Spot

log = logging.getLogger(__name__)

EXIT_USAGE = 2  # what `hamsrv serve` exits with for a bad setting (cli.EXIT_USAGE)
ROLE_ENV = "HAMSRV_WORKER_ROLE"  # set by the supervisor for its workers only
RING_SLOTS = 1 << 18  # more than the ring's 200,000-spot cap
RING_BYTES = 192 << 20  # a spot record is about 600 bytes: 200,000 of them fit with room to spare
_RESTART_BACKOFF = (0.5, 1.0, 2.0, 5.0)
_INTAKE_LIMIT = 64 << 10


@dataclass(frozen=True)
class WorkerRole:
    """What a worker process is told by its supervisor (through ROLE_ENV)."""

    index: int  # 0 = the primary
    ring: str  # shared memory name
    intake: str  # unix socket path of the primary's spot intake
    wake: tuple[int, ...]  # primary: write ends of the followers' pipes; follower: its read end
    status: str  # the supervisor's status file (JSON)

    @property
    def primary(self) -> bool:
        return self.index == 0

    def to_env(self) -> str:
        return json.dumps({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_env(cls, text: str) -> WorkerRole:
        values = json.loads(text)
        return cls(**{**values, "wake": tuple(values["wake"])})


# Every Spot field in declaration order, so a record decodes positionally (fast).
_RECORD_FIELDS = tuple(f.name for f in fields(Spot))
_TIME_AT = _RECORD_FIELDS.index("time")
_record_values = operator.attrgetter(*_RECORD_FIELDS)


def encode_record(entry: RingEntry) -> bytes:
    """A shared-ring record: the spot's JSON (encoded once by the primary) and its fields."""
    values = list(_record_values(entry.spot))
    values[_TIME_AT] = entry.spot.time.timestamp()
    return msgpack.packb([entry.json, values])


def decode_record(data: bytes) -> tuple[Spot, bytes]:
    encoded, values = msgpack.unpackb(data)
    values[_TIME_AT] = datetime.fromtimestamp(values[_TIME_AT], UTC)
    return Spot(*values), encoded


def load_history(shared: SharedRing, hub: Hub) -> None:
    """Copy every record the local ring lacks from the shared ring (lapped records become a gap)."""
    hub.ring.floor = shared.floor
    seq = max(hub.ring.last_seq + 1, shared.first_seq)
    while seq <= shared.last_seq:
        try:
            data = shared.read(seq)
        except Lapped:
            seq = max(seq + 1, shared.first_seq)
            continue
        if data is None:
            break
        spot, encoded = decode_record(data)
        hub.ring.mirror(seq, spot, encoded, trio.current_time())
        seq += 1


class Primary:
    """Worker 0: publishes each tick's spots to the shared ring, wakes the followers, takes their POSTs."""

    def __init__(self, role: WorkerRole, hub: Hub):
        self.shared = SharedRing.attach(role.ring, writer=True)
        self.hub = hub
        self.role = role
        load_history(self.shared, hub)
        hub.add_tick_listener(self._on_tick)

    def _on_tick(self, entries: list[RingEntry]) -> None:
        self.shared.floor = self.hub.ring.floor  # before the spots, so followers see it with them
        written = self.shared.last_seq
        for entry in entries:  # the primary's numbering is the truth; a restarted primary's first tick
            if entry.seq > written:  # holds the spots it loaded from the shared ring: not again
                self.shared.append(encode_record(entry), entry.seq)
        for fd in self.role.wake:
            with contextlib.suppress(BlockingIOError):  # that follower has a wake-up pending already
                os.write(fd, b"!")

    async def serve_intake(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Spots POSTed to other workers: one msgpack request and one reply per connection."""
        path = Path(self.role.intake)
        path.unlink(missing_ok=True)
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        await sock.bind(str(path))
        sock.listen(256)
        listener = trio.SocketListener(sock)
        task_status.started()
        await trio.serve_listeners(self._handle_intake, [listener])

    async def _handle_intake(self, stream: trio.SocketStream) -> None:
        async with stream:
            try:
                with trio.fail_after(5):
                    request = await _receive_message(stream)
                    entry = self.hub.publish(spot_from_fields(request))
                    reply = [entry.seq, entry.json] if entry is not None else [0, None]
                    await stream.send_all(_frame(msgpack.packb(reply)))
            except (ValueError, trio.TooSlowError, trio.BrokenResourceError, msgpack.UnpackException) as exc:
                log.warning("worker intake: %s", exc)


class Follower:
    """Workers 1..N-1: mirror the shared ring into the local hub when woken; forward POSTed spots."""

    def __init__(self, role: WorkerRole, hub: Hub):
        self.shared = SharedRing.attach(role.ring)
        self.hub = hub
        self.role = role
        self.fd = role.wake[0]
        os.set_blocking(self.fd, False)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        load_history(self.shared, self.hub)
        self.hub.flush_tick()
        task_status.started()
        while True:
            with trio.move_on_after(1.0):  # also catch up now and then, should a wake-up be lost
                await trio.lowlevel.wait_readable(self.fd)
            with contextlib.suppress(BlockingIOError):
                while os.read(self.fd, 4096):
                    pass
            load_history(self.shared, self.hub)
            self.hub.flush_tick()

    async def forward(self, spot: Spot) -> bytes | None:
        """Publish through the primary; its JSON of the spot, or None when it was a duplicate."""
        try:
            with trio.fail_after(5):
                stream = await trio.open_unix_socket(self.role.intake)
                async with stream:
                    await stream.send_all(_frame(msgpack.packb(spot_fields(spot))))
                    seq, encoded = await _receive_message(stream)
        except (OSError, trio.TooSlowError, trio.BrokenResourceError, ValueError) as exc:
            raise SpotIntakeUnavailable(f"the spot ingress worker is not answering ({exc})") from None
        return encoded if seq else None


class SpotIntakeUnavailable(Exception):
    """The primary worker is restarting; the caller answers 503."""


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


async def _receive_message(stream: trio.SocketStream) -> Any:
    buf = bytearray()
    while len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[:4], "big"):
        if len(buf) >= 4 and int.from_bytes(buf[:4], "big") > _INTAKE_LIMIT:
            raise ValueError("intake message too large")
        data = await stream.receive_some(65536)
        if not data:
            raise ValueError("intake connection closed early")
        buf += data
    return msgpack.unpackb(bytes(buf[4:4 + int.from_bytes(buf[:4], "big")]))


def read_status(path: str) -> list[dict[str, Any]]:
    """The supervisor's view of its workers (pid, up, restarts, started), for /healthz and /metrics."""
    try:
        workers: list[dict[str, Any]] = json.loads(Path(path).read_text())
        return workers
    except (OSError, ValueError):
        return []


def config_env(config: Config) -> dict[str, str]:
    """The configuration as HAMSRV_* variables, so a worker loads exactly the supervisor's settings."""
    env = {}
    for f in fields(Config):
        value = getattr(config, f.name)
        if value is not None and f.metadata.get("env"):
            env[f.metadata["env"]] = str(value)
    return env


async def supervise(config: Config, *, argv: list[str] | None = None,
                    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Run `config.workers` workers until SIGTERM/SIGINT (or cancellation); started() gives the HTTP port."""
    url = conninfo_url(config.database_url or await start_embedded(config.data_dir))
    db = await Database.open(url, config.data_dir, pool_size=1)  # migrate once, before any worker starts
    await db.close()
    port = config.http.port
    reserve = None
    if port == 0:  # every worker must bind the same port: choose it now and hold it until they have
        reserve = trio.socket.socket()
        reserve.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEPORT, 1)
        await reserve.bind((config.http.host, 0))
        port = reserve.getsockname()[1]
    run_dir = Path(tempfile.mkdtemp(prefix="hamsrv-workers-"))
    shared = SharedRing.create(slots=RING_SLOTS, capacity=RING_BYTES)
    pipes = [os.pipe() for _ in range(config.workers - 1)]
    for _r, w in pipes:
        os.set_blocking(w, False)
    status = run_dir / "workers.json"
    states: list[dict[str, Any]] = [{"worker": i, "pid": None, "up": False, "restarts": 0, "started": None}
                                    for i in range(config.workers)]

    def save_status() -> None:
        tmp = status.with_suffix(".tmp")
        tmp.write_text(json.dumps(states))
        tmp.replace(status)

    base_env = {k: v for k, v in os.environ.items() if not k.startswith("HAMSRV_")}
    base_env.update(config_env(config))
    base_env.update({"HAMSRV_DATABASE_URL": url, "HAMSRV_HTTP_BIND": f"{config.http.host}:{port}",
                     "HAMSRV_WORKERS": "1"})
    procs: dict[int, trio.Process] = {}
    stopping = trio.Event()

    async def keep(index: int) -> None:
        attempt = 0
        while not stopping.is_set():
            wake = tuple(w for _r, w in pipes) if index == 0 else (pipes[index - 1][0],)
            role = WorkerRole(index, shared.name, str(run_dir / "intake.sock"), wake, str(status))
            env = {**base_env, ROLE_ENV: role.to_env()}
            proc = await trio.lowlevel.open_process(argv or [sys.executable, "-m", "hamsrv.cli", "serve"],
                                                    env=env, pass_fds=wake)
            procs[index] = proc
            states[index].update(pid=proc.pid, up=True, started=time.time())
            save_status()
            code = await proc.wait()
            states[index]["up"] = False
            save_status()
            if stopping.is_set():
                return
            if code == EXIT_USAGE:  # a setting the worker refuses: restarting cannot help
                raise ConfigError(f"worker {index} refused the configuration (see its message above)")
            log.warning("worker %d (pid %d) exited with %s; restarting", index, proc.pid, code)
            states[index]["restarts"] += 1
            await trio.sleep(_RESTART_BACKOFF[min(attempt, len(_RESTART_BACKOFF) - 1)])
            attempt += 1

    async def wait_ready() -> None:
        """The port accepts once any worker listens; the primary's intake socket marks it as started."""
        while not (run_dir / "intake.sock").exists():
            await trio.sleep(0.05)
        while True:
            try:
                stream = await trio.open_tcp_stream(config.http.host, port)
            except OSError:
                await trio.sleep(0.05)
                continue
            await stream.aclose()
            return

    try:
        async with trio.open_nursery() as nursery:
            for i in range(config.workers):
                nursery.start_soon(keep, i)
            with trio.fail_after(60):
                await wait_ready()
            if reserve is not None:
                reserve.close()
            log.info("hamsrv ready: %d workers on http %s:%d", config.workers, config.http.host, port)
            task_status.started(port)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                await _until_signal(signals, stopping)
            await _stop_all(procs, config.shutdown_grace + 5)
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            stopping.set()
            await _stop_all(procs, config.shutdown_grace + 5)
        shared.close()
        for r, w in pipes:
            os.close(r)
            os.close(w)
        for leftover in run_dir.iterdir():
            leftover.unlink()
        run_dir.rmdir()


async def _until_signal(signals: Any, stopping: trio.Event) -> None:
    async for signum in signals:
        log.info("%s: stopping the workers", signal.Signals(signum).name)
        stopping.set()
        return


async def _stop_all(procs: dict[int, trio.Process], grace: float) -> None:
    """SIGTERM every worker still running, then SIGKILL whatever has not drained within `grace`."""
    running = [p for p in procs.values() if p.returncode is None]
    for proc in running:
        proc.send_signal(signal.SIGTERM)
    with trio.move_on_after(grace):
        for proc in running:
            await proc.wait()
    for proc in running:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def worker_role() -> WorkerRole | None:
    text = os.environ.get(ROLE_ENV)
    return WorkerRole.from_env(text) if text else None

