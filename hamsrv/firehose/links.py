"""Outbound links to upstream DX-cluster nodes (DXSpider, AR-Cluster, CC Cluster, RBN).

Each link logs in like a user (FACTS 2.3: the prompt arrives without a newline, so it is matched on
the partial buffer), sends the configured commands (`set/skimmer`, `set/dxgrid`, ...), then parses every
line with `cluster.parse_line` and publishes the spots with their original spotter; announcements, WWV
and WCY go on the bulletin board. Spots typed by this node's own users go upstream as `dx` commands,
and their echo (the same call and frequency coming back from the link's login call) is dropped. A lost or refused connection is retried forever with exponential backoff
and full jitter, so a node restart does not get hit by every client at the same moment.
"""

from __future__ import annotations

import logging
import random as _random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import trio

from hamsrv.config import Bind, parse_bind
from hamsrv.errors import ConfigError
from hamsrv.firehose.bulletins import Board
from hamsrv.firehose.cluster import Announce, DxSpot, Wcy, Wwv, parse_line
from hamsrv.firehose.hub import Hub
from hamsrv.firehose.lines import LOGIN_TIMEOUT, MAX_LINE, LineReader
from hamsrv.firehose.pcprot import feed_spot_ok
from hamsrv.firehose.ring import RingEntry
from hamsrv.metrics import Registry
from hamsrv.model import Spot, login_call

log = logging.getLogger(__name__)

READ_SIZE = 16384
CONNECT_TIMEOUT = 30.0
IDLE_TIMEOUT = 900.0  # no byte for 15 minutes: treat the TCP connection as dead and reconnect

_CALL_PROMPT = re.compile(r"(?:login|call|callsign)\s*:\s*$", re.IGNORECASE)
_PASSWORD_PROMPT = re.compile(r"password\s*:\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class LinkConfig:
    host: str
    port: int
    login_call: str
    password: str | None = None

    @property
    def name(self) -> str:
        return str(Bind(self.host, self.port))

    @classmethod
    def parse(cls, text: str, default_call: str = "HAMSRV") -> LinkConfig:
        """`host:port[/CALL[:PASSWORD]]` (one item of HAMSRV_CLUSTER_LINKS); raises ConfigError.

        Without /CALL the link logs in as `default_call` (the node call), which must then be a
        real callsign: upstream nodes refuse anything else."""
        where, _, who = text.strip().partition("/")
        try:
            address = parse_bind(where)
        except ValueError:
            address = None
        if address is None or address.port == 0 or where.startswith(":"):  # a link needs a real host and port
            raise ConfigError(f"HAMSRV_CLUSTER_LINKS: {text.strip()!r} is not host:port[/CALL]")
        call_text, _, password = who.partition(":")
        call = login_call(call_text or default_call)
        if call is None and not call_text:
            raise ConfigError(f"HAMSRV_CLUSTER_LINKS: the node call {default_call!r} is not a callsign, "
                              f"so give the login call: {where}/CALL")
        if call is None:
            raise ConfigError(f"HAMSRV_CLUSTER_LINKS: {call_text!r} is not a callsign")
        return cls(address.host, address.port, call, password or None)


def parse_links(text: str, default_call: str = "HAMSRV") -> list[LinkConfig]:
    """The comma-separated HAMSRV_CLUSTER_LINKS value."""
    return [LinkConfig.parse(item, default_call) for item in text.split(",") if item.strip()]


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: full jitter over `initial * 2**failures`, capped at `maximum`; the count
    starts again after a connection that lasted `stable_after` seconds."""

    initial: float = 1.0
    maximum: float = 300.0
    stable_after: float = 60.0

    def delay(self, failures: int, draw: float) -> float:
        """Seconds before the next attempt after `failures` failed ones; `draw` is uniform in [0, 1)."""
        return draw * min(self.maximum, self.initial * 2.0 ** min(max(failures - 1, 0), 60))


DEFAULT_BACKOFF = Backoff()


@dataclass
class LinkState:
    """Health of one link, for /healthz and metrics."""

    name: str
    connected: bool = False
    since: datetime | None = None  # when it last connected or disconnected
    last_spot_at: datetime | None = None
    spots_received: int = 0
    reconnects: int = 0
    failures: int = 0  # consecutive attempts without a stable connection
    last_error: str | None = None
    lines_ignored: int = 0  # lines that were neither spots nor prompts
    spots_refused: int = 0  # spots outside the bands or DXSpider's time window
    bulletins_received: int = 0  # announcements, WWV and WCY lines
    spots_sent: int = 0  # local users' spots sent up as `dx` commands
    echoes_dropped: int = 0  # our own spots coming back from the link

    def as_dict(self) -> dict[str, object]:
        def iso(t: datetime | None) -> str | None:
            return None if t is None else t.strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"name": self.name, "connected": self.connected, "since": iso(self.since),
                "last_spot_at": iso(self.last_spot_at), "spots_received": self.spots_received,
                "reconnects": self.reconnects, "failures": self.failures, "last_error": self.last_error,
                "spots_sent": self.spots_sent}


class Upstream:
    """What goes up one live link: local users' spots as `dx` commands, bounded; and what went up
    recently, so its echo is not taken in as a new spot."""

    MAX_PENDING = 200
    ECHO_WINDOW = 15 * 60.0

    def __init__(self, login_call: str):
        self.login_call = login_call.split("-")[0]
        self.pending: list[str] = []
        self.sent: dict[tuple[str, int], float] = {}
        self.wakeup = trio.Event()

    def offer(self, spot: Spot, now: float) -> None:
        if len(self.pending) >= self.MAX_PENDING:  # the link stopped taking spots: this one is not sent
            return
        comment = f" {spot.comment}" if spot.comment else ""
        self.pending.append(f"dx {spot.freq:.1f} {spot.dx}{comment}")
        self.sent[(spot.dx, round(spot.freq))] = now
        self.wakeup.set()

    def is_echo(self, spot: Spot, now: float) -> bool:
        for key, at in list(self.sent.items()):
            if now - at > self.ECHO_WINDOW:
                del self.sent[key]
        return spot.spotter.split("-")[0] == self.login_call and (spot.dx, round(spot.freq)) in self.sent


class LinkError(Exception):
    """The upstream did not behave (no prompt, asked for a password we lack, went silent)."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def run_link(hub: Hub, cfg: LinkConfig, state: LinkState, *, backoff: Backoff = DEFAULT_BACKOFF,
                   commands: Sequence[str] = (), board: Board | None = None,
                   live: list[Upstream] | None = None, connect_timeout: float = CONNECT_TIMEOUT,
                   login_timeout: float = LOGIN_TIMEOUT, idle_timeout: float = IDLE_TIMEOUT,
                   draw: Callable[[], float] = _random.random) -> None:
    """Keep one link up forever. `commands` (e.g. `set/skimmer`, `set/dxgrid`) are sent after logging
    in; announcements, WWV and WCY the node sends go on `board`."""
    while True:
        connected_at: float | None = None
        try:
            with trio.fail_after(connect_timeout):
                stream = await trio.open_tcp_stream(cfg.host, cfg.port)
            connected_at = trio.current_time()
            state.connected, state.since = True, _utc_now()
            log.info("cluster link %s connected", cfg.name)
            upstream = Upstream(cfg.login_call)
            if live is not None:
                live.append(upstream)
            try:
                async with stream:
                    await _speak(hub, board, cfg, state, stream, commands, login_timeout, idle_timeout,
                                 upstream)
            finally:
                if live is not None:
                    live.remove(upstream)
            state.last_error = "connection closed by the node"
        except trio.TooSlowError:
            state.last_error = f"no connection within {connect_timeout:g} s"
        except (OSError, trio.BrokenResourceError, LinkError) as exc:
            state.last_error = str(exc) or type(exc).__name__
        if state.connected:
            state.connected, state.since = False, _utc_now()
        stable = connected_at is not None and trio.current_time() - connected_at >= backoff.stable_after
        state.failures = 0 if stable else state.failures + 1
        delay = backoff.delay(state.failures, draw())
        log.warning("cluster link %s: %s; retrying in %.1f s", cfg.name, state.last_error, delay)
        await trio.sleep(delay)
        state.reconnects += 1


async def _speak(hub: Hub, board: Board | None, cfg: LinkConfig, state: LinkState, stream: trio.abc.Stream,
                 commands: Sequence[str], login_timeout: float, idle_timeout: float, upstream: Upstream) -> None:
    """Follow the node and, once logged in, send local users' spots up; the first to end ends both."""
    logged_in = trio.Event()
    failure: BaseException | None = None

    async def follow() -> None:
        nonlocal failure
        try:
            await _follow(hub, board, cfg, state, stream, commands, login_timeout, idle_timeout,
                          upstream, logged_in)
        except (OSError, trio.BrokenResourceError, LinkError) as exc:
            failure = exc
        finally:
            nursery.cancel_scope.cancel()

    async def send_up() -> None:
        await logged_in.wait()
        while True:
            await upstream.wakeup.wait()
            upstream.wakeup = trio.Event()
            lines, upstream.pending = upstream.pending, []
            try:
                await stream.send_all("".join(f"{x}\r\n" for x in lines).encode("utf-8", "replace"))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the reader sees the end too
            state.spots_sent += len(lines)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follow)
        nursery.start_soon(send_up)
    if failure is not None:
        raise failure


async def _follow(hub: Hub, board: Board | None, cfg: LinkConfig, state: LinkState, stream: trio.abc.Stream,
                  commands: Sequence[str], login_timeout: float, idle_timeout: float, upstream: Upstream,
                  logged_in: trio.Event) -> None:
    """Answer the login (and password) prompt, then publish spots until the node hangs up."""
    reader = LineReader(MAX_LINE)
    answered_call = answered_password = False
    deadline = trio.current_time() + login_timeout
    source = f"link:{cfg.host}"
    while True:
        with trio.move_on_at(deadline) as waiting:
            data = await stream.receive_some(READ_SIZE)
        if waiting.cancelled_caught:
            if answered_call:
                raise LinkError(f"nothing received for {idle_timeout:g} s")
            raise LinkError(f"no login prompt within {login_timeout:g} s")
        if not data:
            return
        lines = reader.feed(data)
        now = _utc_now()
        for line in lines:
            event = parse_line(line, now) if line else None
            if isinstance(event, DxSpot):
                if not feed_spot_ok(event.spot, line or "", now):
                    state.spots_refused += 1
                    continue
                if upstream.is_echo(event.spot, trio.current_time()):
                    state.echoes_dropped += 1
                    continue
                event.spot.source = source
                hub.publish(event.spot)
                state.spots_received += 1
                state.last_spot_at = now
            elif isinstance(event, Announce | Wwv | Wcy) and board is not None:
                board.post(event, source=source, origin=cfg.host, when=_bulletin_time(event, now))
                state.bulletins_received += 1
            elif line:
                state.lines_ignored += 1
        prompts = [text for text in (*lines[-3:], reader.partial) if text]
        if not answered_call and any(_CALL_PROMPT.search(t) for t in prompts):
            answered_call = True
            after = () if cfg.password else commands
            await stream.send_all("".join(f"{x}\r\n" for x in (cfg.login_call, *after)).encode())
            if not cfg.password:
                logged_in.set()
        elif answered_call and not answered_password and any(_PASSWORD_PROMPT.search(t) for t in prompts):
            if cfg.password is None:
                raise LinkError("the node asks for a password; configure host:port/CALL:PASSWORD")
            answered_password = True
            await stream.send_all("".join(f"{x}\r\n" for x in (cfg.password, *commands)).encode())
            logged_in.set()
        deadline = trio.current_time() + (idle_timeout if answered_call else login_timeout)


def _bulletin_time(event: Announce | Wwv | Wcy, now: datetime) -> datetime | None:
    """DXSpider dates a WWV/WCY at minute 18 of the hour it names (`sprintf("%02d18Z", $hour)`)."""
    if isinstance(event, Announce) or event.hour is None or not 0 <= event.hour <= 23:
        return None
    when = now.replace(hour=event.hour, minute=18, second=0, microsecond=0)
    return when - timedelta(days=1) if when > now + timedelta(hours=1) else when


async def serve_links(hub: Hub, configs: Sequence[LinkConfig], *, metrics: Registry | None = None,
                      task_status: trio.TaskStatus[list[LinkState]] = trio.TASK_STATUS_IGNORED,
                      **link_options: Any) -> None:
    """Run every link; `task_status.started(states)` hands back one LinkState per config."""
    states = [LinkState(cfg.name) for cfg in configs]
    live: list[Upstream] = []

    def send_up(entries: list[RingEntry]) -> None:
        for entry in entries:
            if entry.spot.source == "user":  # typed here; feeds', links' and peers' spots stay put
                for upstream in live:
                    upstream.offer(entry.spot, trio.current_time())

    if configs:
        hub.add_tick_listener(send_up)
    if metrics is not None:
        metrics.labelled_gauge("hamsrv_cluster_link_up", "1 while the link to an upstream node is up",
                               "link", lambda: {s.name: float(s.connected) for s in states})
        metrics.labelled_gauge("hamsrv_cluster_link_spots", "Spots received over each upstream link",
                               "link", lambda: {s.name: float(s.spots_received) for s in states})
    async with trio.open_nursery() as nursery:
        for cfg, state in zip(configs, states, strict=True):
            nursery.start_soon(partial(run_link, hub, cfg, state, live=live, **link_options))
        task_status.started(states)


def parse_commands(text: str) -> list[str]:
    """HAMSRV_CLUSTER_LINK_COMMANDS: commands separated by `;` (`set/skimmer CW;set/dxgrid`)."""
    return [c.strip() for c in text.split(";") if c.strip()]
