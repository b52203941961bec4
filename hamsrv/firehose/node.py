"""The DX-cluster TCP port (telnet-style, FACTS 2.3): a thin trio shell around `ClusterSession`.

Each connection runs a reader (bytes -> session -> actions) and, once a user has logged in, a writer
that follows the hub ring with a cursor and sends every new matching spot of a tick in one write.
Nothing is queued per client: a user that falls behind the ring is told about the gap, and a socket
that stays unwritable for `write_timeout` seconds is closed.

Every complete line of a read is handled in one pass and answered with one write. A feed is not read
line by line at all: the hub pulls whatever it sent since the last tick right before the tick goes out
(`Hub.add_tick_source`), so a feed's spots cost no wake-up, no task switch and no write of their own, and
leave with the tick they arrived in, as they would if read at once.
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import logging
import math
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from itertools import islice
from typing import Any

import trio

from hamsrv.errors import ConfigError
from hamsrv.firehose.bulletins import Board, Talk, format_bulletins
from hamsrv.firehose.commands import format_users
from hamsrv.firehose.events import (
    CheckSecret,
    Disconnect,
    Event,
    LoggedIn,
    Post,
    Publish,
    Send,
    ShowBulletins,
    ShowDx,
    ShowUsers,
)
from hamsrv.firehose.hub import Hub
from hamsrv.firehose.lines import LOGIN_TIMEOUT
from hamsrv.firehose.modes import is_skimmer
from hamsrv.firehose.session import DUPLICATE_NOTICE, ClusterSession, State
from hamsrv.listen import open_listeners
from hamsrv.metrics import Registry

log = logging.getLogger(__name__)

WRITE_TIMEOUT = 30.0  # a socket unwritable this long belongs to a client that stopped reading
READ_SIZE = 4096
# A feed's bytes taken per tick: at 50 ms ticks about 16,000 spots/s from one feed; a feed sending faster
# is slowed by TCP (its lines wait in the kernel), and one tick never spends more than ~20 ms on one feed.
FEED_READ_SIZE = 65536
MAX_BATCH = 1000  # ring entries per write while a user catches up, so one write stays small
SHOW_DX_SCAN = 20_000  # newest ring entries SH/DX looks through for matches
MAX_REMEMBERED = 20_000  # users whose settings (set/skimmer, filters, set/name ...) are kept between logins
SHUTDOWN_NOTICE = b"\r\n*** node shutting down\r\n"
BUSY_NOTICE = b"*** this node has no room for more connections from you, try again later\r\n"
LOGIN_TIMEOUT_NOTICE = b"\r\n*** login timed out, goodbye\r\n"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SecretCheck = Callable[[str, str, str], Awaitable[bool]]  # (login call, password or token, peer IP) -> ok
Reachable = Callable[[str], Awaitable[bool]]  # a call not logged in here that a talk still reaches (the user bus)


def logged_in(roster: dict[str, list[Any]], call: str) -> bool:
    """Whether `call` is logged in on the cluster port (a call without SSID: with any SSID)."""
    return bool(roster.get(call)) or any(c.split("-")[0] == call for c in roster)


@dataclass(frozen=True)
class ClusterLimits:
    """What one peer may take from the node (README "Limits"); trusted feeds are exempt."""

    max_connections: int = 5000  # all connections together
    per_ip: int = 20  # connections from one address
    idle_timeout: float = 24 * 3600.0  # a logged-in user who sends nothing for this long is let go
    spots_per_minute: int = 10  # a user's DX commands: a burst of this many, then this many a minute
    posts_per_minute: int = 5  # a user's announcements and talks, the same way


class _SpotBucket:
    """Token bucket for one user's spots: `rate` a minute, bursts up to `rate`."""

    def __init__(self, rate: int):
        self.rate, self.tokens, self.stamp = rate, float(rate), trio.current_time()

    def take(self) -> bool:
        now = trio.current_time()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate / 60.0)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass(frozen=True)
class FeedPolicy:
    """Who may push raw spots: peers from `networks`, or anyone logging in as `CALL TOKEN`."""

    networks: tuple[IPNetwork, ...] = ()
    tokens: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> FeedPolicy:
        """`"127.0.0.1,10.0.0.0/8,token:s3cret"` (HAMSRV_CLUSTER_FEEDS); raises ConfigError."""
        networks: list[IPNetwork] = []
        tokens: list[str] = []
        for item in (i.strip() for i in text.split(",")):
            if not item:
                continue
            if item.lower().startswith("token:"):
                token = item[len("token:"):]
                if not token or any(c.isspace() for c in token):
                    raise ConfigError(f"HAMSRV_CLUSTER_FEEDS: {item!r} needs a token without spaces")
                tokens.append(token)
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ConfigError(f"HAMSRV_CLUSTER_FEEDS: {item!r} is neither an address, a network "
                                  "(10.0.0.0/8) nor token:SECRET") from None
        return cls(tuple(networks), tuple(tokens))

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.networks)


class _Stalled(Exception):
    """The peer stopped reading: its socket stayed unwritable past the write timeout."""


@dataclass(frozen=True, slots=True)
class ClusterStatistics:
    """What /metrics shows of the cluster port (trio's `statistics()` convention)."""

    users: int  # logged in now
    feeds: int  # feeds connected now
    open: int  # connections open now, of any kind
    connections: int  # accepted since start
    user_spots: int
    feed_spots: int
    stalled: int  # closed because they stopped reading
    refused: int  # refused by the connection limits
    rate_limited: int  # user spots refused by the per-user spot rate


class _Node:
    """What every connection shares: the hub, the settings and the counters."""

    def __init__(self, hub: Hub, board: Board, node_call: str, feeds: FeedPolicy, metrics: Registry,
                 login_timeout: float, write_timeout: float, limits: ClusterLimits,
                 check_secret: SecretCheck | None = None, roster: dict[str, list[Any]] | None = None,
                 reachable: Reachable | None = None):
        self.hub, self.board, self.node_call, self.feeds = hub, board, node_call, feeds
        self.check_secret, self.reachable = check_secret, reachable
        self.login_timeout, self.write_timeout, self.limits = login_timeout, write_timeout, limits
        self.users = 0
        self.feed_peers = 0
        self.open = 0
        self.per_ip: dict[str, int] = {}
        # logged-in users by call, for talk and who (and peering's PC92 user records, when shared)
        self.sessions: dict[str, list[Any]] = roster if roster is not None else {}
        self.prefs: OrderedDict[str, dict[str, object]] = OrderedDict()  # settings of users who left
        metrics.gauge("hamsrv_cluster_users", "Users logged in on the cluster port",
                      lambda: self.statistics().users)
        metrics.gauge("hamsrv_cluster_feeds", "Feeds connected to the cluster port",
                      lambda: self.statistics().feeds)
        self.connections = metrics.counter("hamsrv_cluster_connections_total",
                                           "Connections accepted on the cluster port")
        self.user_spots = metrics.counter("hamsrv_cluster_user_spots_total",
                                          "Spots published by cluster users (DX command)")
        self.feed_spots = metrics.counter("hamsrv_cluster_feed_spots_total",
                                          "Spots published by cluster feeds")
        self.stalled = metrics.counter("hamsrv_cluster_stalled_total",
                                       "Cluster connections closed because they stopped reading")
        self.refused = metrics.counter("hamsrv_cluster_refused_total",
                                       "Cluster connections refused by the connection limits")
        self.rate_limited = metrics.counter("hamsrv_cluster_spots_rate_limited_total",
                                            "User spots refused by the per-user spot rate")

    def statistics(self) -> ClusterStatistics:
        return ClusterStatistics(self.users, self.feed_peers, self.open, int(self.connections.value),
                                 int(self.user_spots.value), int(self.feed_spots.value), int(self.stalled.value),
                                 int(self.refused.value), int(self.rate_limited.value))

    def remember(self, call: str, prefs: dict[str, object]) -> None:
        """Keep a leaving user's settings for their next login (bounded: the oldest are forgotten)."""
        self.prefs[call] = prefs
        self.prefs.move_to_end(call)
        while len(self.prefs) > MAX_REMEMBERED:
            self.prefs.popitem(last=False)

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections.inc()
        peer = _peer_address(stream)
        exempt = self.feeds.trusts(peer)
        if not exempt and (self.open >= self.limits.max_connections
                           or self.per_ip.get(peer, 0) >= self.limits.per_ip):
            self.refused.inc()
            with trio.move_on_after(1.0), \
                    contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.send_all(BUSY_NOTICE)
            await trio.aclose_forcefully(stream)
            return
        self.open += 1
        self.per_ip[peer] = self.per_ip.get(peer, 0) + 1
        try:
            await _Connection(self, stream).run()
        except Exception:  # a bug in one connection must not take the port down for everyone
            log.exception("cluster connection failed")
        finally:
            self.open -= 1
            left = self.per_ip.pop(peer) - 1
            if left:
                self.per_ip[peer] = left


def _peer_address(stream: trio.SocketStream) -> str:
    try:
        peer = stream.socket.getpeername()
    except OSError:
        return ""
    return str(peer[0]) if isinstance(peer, tuple) else ""


class _Connection:
    def __init__(self, node: _Node, stream: trio.SocketStream):
        self.node, self.stream = node, stream
        self.peer = _peer_address(stream)
        self.session = ClusterSession(node.node_call, trusted_feed=node.feeds.trusts(self.peer),
                                      feed_tokens=node.feeds.tokens, accounts=node.check_secret is not None)
        self._send_lock = trio.Lock()
        self._out: list[bytes] = []  # answers to the current read (or, for a feed, tick), sent in one write
        self._feed_wakeup = trio.Event()  # a pulled tick left answers to send, or ended the feed
        self._feed_ended = False
        self._login_scope = trio.CancelScope()
        self._role = ""  # "user" or "feed" once logged in, for the gauges
        self._spots = _SpotBucket(node.limits.spots_per_minute)
        self._posts = _SpotBucket(node.limits.posts_per_minute)
        self.started = datetime.now(UTC)
        self._nursery: trio.Nursery  # set by run(): both sides of the connection live in it

    async def run(self) -> None:
        shutting_down = False
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._until_done, self._read_loop)
        except BaseException:
            shutting_down = trio.current_effective_deadline() == -math.inf  # cancelled from outside
            raise
        finally:
            if self._role == "user":
                self._leave_users()
            elif self._role == "feed":
                self.node.feed_peers -= 1
            with trio.CancelScope(shield=True):
                if shutting_down:
                    with trio.move_on_after(1.0), \
                            contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                        await self.stream.send_all(SHUTDOWN_NOTICE)
                await trio.aclose_forcefully(self.stream)

    def _leave_users(self) -> None:
        """No longer a user: uncounted, out of the roster, settings kept for the next login."""
        self.node.users -= 1
        self.node.remember(self.session.call, self.session.preferences())
        mine = self.node.sessions.get(self.session.call, [])
        if self in mine:
            mine.remove(self)
        if not mine:
            self.node.sessions.pop(self.session.call, None)

    async def _until_done(self, task: Callable[[], Awaitable[None]]) -> None:
        """Run one side of the connection; when it ends for any reason, the whole connection ends."""
        try:
            await task()
        except (trio.BrokenResourceError, trio.ClosedResourceError, _Stalled) as exc:
            log.info("cluster connection %s %s closed: %s", self.peer, self.session.call, exc)
        finally:
            self._nursery.cancel_scope.cancel()

    async def _send(self, data: bytes) -> None:
        async with self._send_lock:
            with trio.move_on_after(self.node.write_timeout):
                await self.stream.send_all(data)
                return
        self.node.stalled.inc()
        raise _Stalled(f"socket unwritable for {self.node.write_timeout:g} s")

    async def _flush(self) -> None:
        """Send the answers gathered so far in one write."""
        if self._out:
            data = b"".join(self._out)
            self._out.clear()
            await self._send(data)

    async def _read_loop(self) -> None:
        await self._act(self.session.start())
        await self._flush()
        self._login_scope.deadline = trio.current_time() + self.node.login_timeout
        with self._login_scope:
            while self.session.state is not State.CLOSED:
                if self._role == "feed" and isinstance(self.stream, trio.SocketStream):
                    await self._feed_loop()
                    return
                data = await self.stream.receive_some(READ_SIZE)
                if not data:
                    return
                if self._role == "user":  # idle time counts from the user's last input
                    self._login_scope.deadline = trio.current_time() + self.node.limits.idle_timeout
                await self._act(self.session.receive_data(data))
                await self._flush()
        if self._login_scope.cancelled_caught:
            if self._role == "user":
                await self._send(f"\r\n*** idle for {self.node.limits.idle_timeout:g} s, goodbye\r\n".encode())
            else:
                await self._send(LOGIN_TIMEOUT_NOTICE)

    async def _feed_loop(self) -> None:
        """A feed from here on: the hub pulls its lines each tick (`_pull_feed`); this task only sends
        what the session answers (the goodbye) and notices the end."""
        hub = self.node.hub
        hub.add_tick_source(self._pull_feed)
        try:
            while not self._feed_ended:
                await self._feed_wakeup.wait()
                self._feed_wakeup = trio.Event()
                await self._flush()
        finally:
            hub.remove_tick_source(self._pull_feed)

    def _pull_feed(self) -> None:
        """Called by the hub right before a tick goes out: read what the feed sent since the last tick
        (without waiting) and publish its spots into this very tick."""
        try:
            data = os.read(self.stream.socket.fileno(), FEED_READ_SIZE)
        except BlockingIOError:
            return
        except OSError:  # reset by the peer, or closed under us
            data = b""
        try:
            for event in self.session.receive_data(data) if data else ():
                self._act_at_once(event)
        except Exception:  # this runs in the hub's tick: a bug here ends this feed, not the hub
            log.exception("cluster feed %s failed", self.peer)
            data = b""
        if not data or self.session.state is State.CLOSED:
            self._feed_ended = True
        if self._out or self._feed_ended:
            self._feed_wakeup.set()

    def _publish(self, event: Publish) -> None:
        if event.by_user and not self._spots.take():
            self.node.rate_limited.inc()
            self._out.append(b"*** too many spots: at most %d a minute from one user\r\n"
                             % self.node.limits.spots_per_minute)
            return
        if event.by_user:  # PC61 carries the spotter's address (DXProtout.pm pc61 `$ipaddr`)
            event.spot.extra["spotter_ip"] = self.peer or "0.0.0.0"
        entry = self.node.hub.publish(event.spot)
        if event.by_user:
            self.node.user_spots.inc()
            if entry is None:
                self._out.append(DUPLICATE_NOTICE)
        else:
            self.node.feed_spots.inc()

    def _act_at_once(self, event: Event) -> bool:
        """Carry out an event that needs no waiting (all a feed's session gives); False for the others."""
        if isinstance(event, Send):
            self._out.append(event.data)
        elif isinstance(event, Publish):
            self._publish(event)
        elif isinstance(event, Disconnect):
            log.info("cluster connection %s %s: %s", self.peer, self.session.call, event.reason)
        else:
            return False
        return True

    async def _act(self, events: Iterable[Event]) -> None:
        """Carry out the session's events; what they answer is gathered in `_out` for one write."""
        for event in events:
            if self._act_at_once(event):
                continue
            if isinstance(event, ShowDx):
                # DXSpider keeps skimmer spots out of sh/dx; the list is newest by spot time
                scanned = islice(self.node.hub.ring.newest_first(), SHOW_DX_SCAN)
                found = [e.spot for e in scanned if not is_skimmer(e.spot) and event.matches(e.spot)]
                newest = heapq.nlargest(event.count, found, key=lambda spot: spot.time)
                self._out.append(self.session.format_show_dx(newest, event.query, event.real))
            elif isinstance(event, Post):
                await self._post(event)
            elif isinstance(event, ShowBulletins):
                self._out.append(format_bulletins(event.kind, self.node.board.newest(event.kind, event.count)))
            elif isinstance(event, ShowUsers):
                users = [(c.session.call, c.started, c.session.name, c.peer)
                         for conns in self.node.sessions.values() for c in conns]
                self._out.append(format_users(event.kind, self.node.node_call, sorted(users)))
            elif isinstance(event, LoggedIn):
                self._logged_in(event)
                self._login_scope.deadline = (trio.current_time() + self.node.limits.idle_timeout
                                              if self._role == "user" else math.inf)  # feeds stay
            elif isinstance(event, CheckSecret) and self.node.check_secret is not None:
                ok = await self.node.check_secret(event.call, event.secret, self.peer)
                await self._act(self.session.secret_checked(ok))

    async def _post(self, event: Post) -> None:
        """A user's announcement or talk: rate-limited, a talk only to a user logged in here (or
        reachable on the user bus)."""
        item = event.item
        if isinstance(item, Talk) and not (logged_in(self.node.sessions, item.to) or (
                self.node.reachable is not None and await self.node.reachable(item.to))):
            self._out.append(f"callsign {item.to} not visible on the cluster\r\n".encode())  # DXSpider e7
            return
        if not self._posts.take():
            self.node.rate_limited.inc()
            self._out.append(b"*** too many announcements: at most %d a minute from one user\r\n"
                             % self.node.limits.posts_per_minute)
            return
        posted = self.node.board.post(item, source=f"user:{self.session.call}", origin=self.node.node_call)
        if posted is None:
            self._out.append(b"Sorry, this is a duplicate\r\n")  # DXSpider `dup`

    def _logged_in(self, event: LoggedIn) -> None:
        if event.feed:
            if self._role == "user":  # a trusted peer that logged in with a call, then pushed a spot line
                self._leave_users()
            self._role = "feed"
            self.node.feed_peers += 1
            return
        self._role = "user"
        self.node.users += 1
        remembered = self.node.prefs.get(event.call)
        if remembered is not None:
            self.session.restore(remembered)
        self.node.sessions.setdefault(event.call, []).append(self)
        self._nursery.start_soon(self._until_done, self._write_loop)
        self._nursery.start_soon(self._until_done, self._bulletin_loop)

    async def _bulletin_loop(self) -> None:
        """Follow the bulletin board from the login moment: announcements, talks, WWV, WCY."""
        board, session = self.node.board, self.session
        cursor = board.last_seq
        while True:
            await board.wait_after(cursor)
            posted = board.after(cursor)
            cursor = board.last_seq
            chunks = [session.bulletin_line(p) for p in posted if session.wants_bulletin(p)]
            if chunks:
                await self._send(b"".join(chunks))

    async def _write_loop(self) -> None:
        """Follow the ring from the login moment; one write per tick carries every matching spot."""
        hub, session = self.node.hub, self.session
        cursor = hub.ring.last_seq
        while True:
            await hub.wait_after(cursor)
            ring = hub.ring
            chunks: list[bytes] = []
            if cursor + 1 < ring.first_seq:
                chunks.append(f"*** gap: {ring.first_seq - 1 - cursor} spots skipped\r\n".encode())
                cursor = ring.first_seq - 1
            entries = ring.after(cursor, MAX_BATCH)
            if entries:
                cursor = entries[-1].seq
            chunks += [session.spot_line(e) for e in entries if session.wants(e)]
            if chunks:
                await self._send(b"".join(chunks))
            else:
                await trio.lowlevel.checkpoint()


async def serve_cluster(hub: Hub, host: str, port: int, *, node_call: str = "HAMSRV",
                        board: Board | None = None, feeds: FeedPolicy | None = None, metrics: Registry | None = None,
                        login_timeout: float = LOGIN_TIMEOUT, write_timeout: float = WRITE_TIMEOUT,
                        limits: ClusterLimits | None = None, check_secret: SecretCheck | None = None,
                        roster: dict[str, list[Any]] | None = None, reachable: Reachable | None = None,
                        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Listen on host:port (0 picks a free port, reported through `task_status.started(port)`)."""
    node = _Node(hub, board or Board(), node_call.upper(), feeds or FeedPolicy(), metrics or Registry(),
                 login_timeout, write_timeout, limits or ClusterLimits(), check_secret, roster, reachable)
    listeners = await open_listeners(host, port)
    actual_port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as handlers:
        await handlers.start(partial(trio.serve_listeners, node.handle, listeners,
                                     handler_nursery=handlers))
        log.info("DX cluster port listening on %s:%d", host, actual_port)
        task_status.started(actual_port)
