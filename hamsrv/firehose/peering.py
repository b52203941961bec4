"""Node peering over the PC protocol: the thin trio shell around peer.PeerProtocol.

`HAMSRV_CLUSTER_PEERS=host:port/OURCALL[,...]`: for each item hamsrv dials out, answers the login
prompt with OURCALL (the peer must know that call as a node: DXSpider `set/spider OURCALL`) and then
speaks PC. A lost link, or one whose pings go unanswered, is re-dialled with the links' backoff.

What travels: every spot the peer sends goes to the hub (which drops repeats, so a spot that loops
back, or arrives as PC11 and PC61, reaches users and the firehose once); local users' spots and other
peers' spots go out to every peer but the one they came from, with the hop count lowered. The same
holds for announcements, WWV and WCY on the bulletin board. Spots from RBN/upstream links and feeds
stay local: they belong to another network, which is usually already joined to this one.
"""

from __future__ import annotations

import logging
import random as _random
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import trio

from hamsrv.config import Bind, parse_bind
from hamsrv.errors import ConfigError
from hamsrv.firehose.bulletins import Board, Posted, Talk
from hamsrv.firehose.cluster import Announce
from hamsrv.firehose.hub import Hub
from hamsrv.firehose.lines import LOGIN_TIMEOUT, MAX_LINE, LineReader
from hamsrv.firehose.links import DEFAULT_BACKOFF, Backoff
from hamsrv.firehose.peer import Action, PeerProtocol, PeerState, PostBulletin, PublishSpot, SendLine
from hamsrv.firehose.ring import RingEntry
from hamsrv.metrics import Registry
from hamsrv.model import login_call

log = logging.getLogger(__name__)

READ_SIZE = 16384
CONNECT_TIMEOUT = 30.0
TICK = 10.0  # DXProt.pm process runs its timers every ten seconds
OUTBOX = 2000  # sentences queued for one peer; beyond that the peer is not keeping up and is let go
_LOGIN_PROMPTS = ("login:", "call:", "callsign:")


@dataclass(frozen=True)
class PeerConfig:
    host: str
    port: int
    our_call: str

    @property
    def name(self) -> str:
        return str(Bind(self.host, self.port))

    @classmethod
    def parse(cls, text: str) -> PeerConfig:
        """`host:port/OURCALL` (one item of HAMSRV_CLUSTER_PEERS); raises ConfigError."""
        where, _, call_text = text.strip().partition("/")
        try:
            address = parse_bind(where)
        except ValueError:
            address = None
        if address is None or address.port == 0 or where.startswith(":") or not call_text:
            raise ConfigError(f"HAMSRV_CLUSTER_PEERS: {text.strip()!r} is not host:port/OURCALL")
        call = login_call(call_text)
        if call is None:
            raise ConfigError(f"HAMSRV_CLUSTER_PEERS: {call_text!r} is not a callsign")
        return cls(address.host, address.port, call)


def parse_peers(text: str) -> list[PeerConfig]:
    """The comma-separated HAMSRV_CLUSTER_PEERS value."""
    return [PeerConfig.parse(item) for item in text.split(",") if item.strip()]


@dataclass
class PeerStatus:
    """Health of one peer link, for /healthz."""

    name: str
    our_call: str
    peer_call: str | None = None
    connected: bool = False
    state: str = "down"
    since: datetime | None = None
    spots_received: int = 0
    spots_sent: int = 0
    bulletins_received: int = 0
    bulletins_sent: int = 0
    pings_answered: int = 0
    reconnects: int = 0
    failures: int = 0
    last_error: str | None = None
    dropped: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "our_call": self.our_call, "peer_call": self.peer_call,
                "connected": self.connected, "state": self.state,
                "since": None if self.since is None else self.since.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "spots_received": self.spots_received, "spots_sent": self.spots_sent,
                "bulletins_received": self.bulletins_received, "bulletins_sent": self.bulletins_sent,
                "pings_answered": self.pings_answered,
                "reconnects": self.reconnects, "failures": self.failures, "last_error": self.last_error,
                "dropped": dict(self.dropped)}


class PeerError(Exception):
    """The peer did not behave (no login prompt, no answer to pings, could not keep up)."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _Link:
    """One live connection: the protocol state and the outbox that the hub and board feed."""

    def __init__(self, cfg: PeerConfig, status: PeerStatus, protocol: PeerProtocol):
        self.cfg, self.status, self.protocol = cfg, status, protocol
        self.send, self.outbox = trio.open_memory_channel[str](OUTBOX)
        self.closing = ""  # why the link is ending, once it is
        self.scope: trio.CancelScope | None = None

    def close(self, reason: str) -> None:
        if not self.closing:
            self.closing = reason
        if self.scope is not None:
            self.scope.cancel()

    @property
    def source(self) -> str:
        return f"peer:{self.protocol.peer_call or 'unknown'}"

    def queue(self, line: str | None) -> None:
        if line is None or self.closing:
            return
        try:
            self.send.send_nowait(line)
        except trio.WouldBlock:
            self.close(f"peer not reading: more than {OUTBOX} sentences waiting")


class Peering:
    """Every configured peer and the forwarding between them, the hub and the bulletin board."""

    def __init__(self, hub: Hub, board: Board, configs: Sequence[PeerConfig], *,
                 users: Callable[[], Collection[str]] = lambda: (), backoff: Backoff = DEFAULT_BACKOFF,
                 ping_interval: float | None = None, tick: float = TICK, init_timeout: float = 60.0,
                 login_timeout: float = LOGIN_TIMEOUT, connect_timeout: float = CONNECT_TIMEOUT,
                 draw: Callable[[], float] = _random.random, clock: Callable[[], datetime] = _utc_now):
        self.hub, self.board, self.configs = hub, board, list(configs)
        self.users, self.backoff, self.draw, self.clock = users, backoff, draw, clock
        self.ping_interval, self.tick, self.init_timeout = ping_interval, tick, init_timeout
        self.login_timeout, self.connect_timeout = login_timeout, connect_timeout
        self.statuses = [PeerStatus(cfg.name, cfg.our_call) for cfg in self.configs]
        self._live: list[_Link] = []
        if self.configs:
            hub.add_tick_listener(self._forward_spots)
            board.add_listener(self._forward_bulletin)

    # ---- forwarding (synchronous, called by the hub each tick and by the board on each post)

    def _forward_spots(self, entries: list[RingEntry]) -> None:
        for entry in entries:
            spot = entry.spot
            local = spot.source == "user"
            if not (local or spot.source.startswith("peer:")):
                continue
            for link in self._live:
                if link.protocol.state is PeerState.NORMAL and spot.source != link.source:
                    line = link.protocol.spot_line(spot, local=local)
                    if line is not None:
                        link.queue(line)
                        link.status.spots_sent += 1

    def _forward_bulletin(self, posted: Posted) -> None:
        item = posted.item
        local = posted.source.startswith("user:")
        if isinstance(item, Talk) or (isinstance(item, Announce) and item.to == "LOCAL"):
            return  # talks go to local users only; LOCAL stays on this node (DXProt.pm send_announce)
        if not (local or posted.source.startswith("peer:")):
            return
        for link in self._live:
            if link.protocol.state is PeerState.NORMAL and posted.source != link.source:
                # what our users post enters the network at this link's node call
                origin = link.cfg.our_call if local else (posted.origin or link.cfg.our_call)
                line = link.protocol.bulletin_line(item, origin, posted.when, None if local else posted.hops)
                if line is not None:
                    link.queue(line)
                    link.status.bulletins_sent += 1

    # ---- the links

    async def run(self, *, task_status: trio.TaskStatus[list[PeerStatus]] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for cfg, status in zip(self.configs, self.statuses, strict=True):
                nursery.start_soon(self._keep_up, cfg, status)
            task_status.started(self.statuses)

    async def _keep_up(self, cfg: PeerConfig, status: PeerStatus) -> None:
        """Dial, speak PC until the link dies, wait out the backoff, and again, forever."""
        while True:
            connected_at: float | None = None
            try:
                with trio.fail_after(self.connect_timeout):
                    stream = await trio.open_tcp_stream(cfg.host, cfg.port)
                connected_at = trio.current_time()
                status.connected, status.since, status.state = True, _utc_now(), "login"
                log.info("cluster peer %s connected", cfg.name)
                async with stream:
                    await self._speak(cfg, status, stream)
                status.last_error = "connection closed by the peer"
            except trio.TooSlowError:
                status.last_error = f"no connection within {self.connect_timeout:g} s"
            except (OSError, trio.BrokenResourceError, PeerError) as exc:
                status.last_error = str(exc) or type(exc).__name__
            if status.connected:
                status.connected, status.since = False, _utc_now()
            status.state = "down"
            stable = connected_at is not None and \
                trio.current_time() - connected_at >= self.backoff.stable_after
            status.failures = 0 if stable else status.failures + 1
            delay = self.backoff.delay(status.failures, self.draw())
            log.warning("cluster peer %s: %s; re-dialling in %.1f s", cfg.name, status.last_error, delay)
            await trio.sleep(delay)
            status.reconnects += 1

    async def _speak(self, cfg: PeerConfig, status: PeerStatus, stream: trio.SocketStream) -> None:
        reader = LineReader(MAX_LINE)
        pending = await self._login(cfg, stream, reader)
        options: dict[str, Any] = {} if self.ping_interval is None else {"ping_interval": self.ping_interval}
        protocol = PeerProtocol(cfg.our_call, clock=self.clock, users=self.users,
                                started=trio.current_time(), init_timeout=self.init_timeout, **options)
        link = _Link(cfg, status, protocol)
        status.state, status.dropped = "init", protocol.dropped
        self._live.append(link)
        try:
            async with trio.open_nursery() as nursery:
                link.scope = nursery.cancel_scope
                nursery.start_soon(self._guard, link, self._write(link, stream))
                nursery.start_soon(self._guard, link, self._timers(link))
                nursery.start_soon(self._guard, link, self._read(link, stream, reader, pending))
        finally:
            self._live.remove(link)
            status.peer_call = protocol.peer_call
        raise PeerError(link.closing or "link ended")

    async def _guard(self, link: _Link, task: Awaitable[None]) -> None:
        """Run one side of the link; whatever ends it ends the whole link, with the reason kept."""
        try:
            await task
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            link.close(str(exc) or type(exc).__name__)
        link.close("link ended")

    async def _read(self, link: _Link, stream: trio.SocketStream, reader: LineReader,
                    pending: list[str]) -> None:
        protocol, status = link.protocol, link.status
        self._act(link, [a for line in pending for a in protocol.receive_line(line)])
        while not link.closing:
            data = await stream.receive_some(READ_SIZE)
            if not data:
                link.close("connection closed by the peer")
                return
            self._act(link, [a for line in reader.feed(data) if line for a in protocol.receive_line(line)])
            status.peer_call, status.state = protocol.peer_call, protocol.state.value
            status.pings_answered = protocol.ping_times

    async def _login(self, cfg: PeerConfig, stream: trio.SocketStream, reader: LineReader) -> list[str]:
        """Wait for the login prompt (it comes without a newline), answer with our call; returns any
        PC sentences that arrived with the prompt."""
        with trio.move_on_after(self.login_timeout):
            while True:
                data = await stream.receive_some(READ_SIZE)
                if not data:
                    raise PeerError("closed before the login prompt")
                lines = [line for line in reader.feed(data) if line]
                tail = reader.partial.strip().lower()
                if tail.endswith(_LOGIN_PROMPTS) or any(line.strip().lower().endswith(_LOGIN_PROMPTS)
                                                        for line in lines):
                    await stream.send_all(f"{cfg.our_call}\r\n".encode())
                    return [line for line in lines if line.startswith("PC")]
        raise PeerError(f"no login prompt within {self.login_timeout:g} s")

    def _act(self, link: _Link, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SendLine):
                link.queue(action.line)
            elif isinstance(action, PublishSpot):
                link.status.spots_received += 1
                self.hub.publish(action.spot)
            elif isinstance(action, PostBulletin):
                link.status.bulletins_received += 1
                self.board.post(action.item, source=link.source, origin=action.origin, hops=action.hops,
                                when=action.when)
            else:
                link.close(action.reason)

    async def _timers(self, link: _Link) -> None:
        while not link.closing:
            await trio.sleep(self.tick)
            self._act(link, link.protocol.tick(trio.current_time()))

    async def _write(self, link: _Link, stream: trio.SocketStream) -> None:
        async for line in link.outbox:
            batch = [line]
            while True:
                try:
                    batch.append(link.outbox.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            await stream.send_all("".join(f"{x}\r\n" for x in batch).encode("utf-8", "replace"))


async def serve_peers(hub: Hub, board: Board, configs: Sequence[PeerConfig], *, metrics: Registry | None = None,
                      task_status: trio.TaskStatus[list[PeerStatus]] = trio.TASK_STATUS_IGNORED,
                      **options: Any) -> None:
    """Run every peer link; `task_status.started(statuses)` hands back one PeerStatus per config."""
    peering = Peering(hub, board, configs, **options)
    if metrics is not None:
        metrics.labelled_gauge("hamsrv_cluster_peer_up", "1 while the PC link to a peer node is up",
                               "peer", lambda: {s.name: float(s.state == "normal") for s in peering.statuses})
    await peering.run(task_status=task_status)
