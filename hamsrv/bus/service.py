"""The user bus service: the pages connected to this process, and the events that reach them.

Why PostgreSQL NOTIFY: hamsrv may run as several worker processes (`--workers N`) and several nodes,
and an event is born wherever its work ran (an import job on any worker, a QSL sync on the node that
holds its lock, a cluster announcement on the primary) while the page's WebSocket sits on whichever
worker accepted it. Every process already talks to the same database, so one NOTIFY reaches all of them
with no new moving part (Redis is optional, shared memory only spans one node's workers). The volume is
low (UI events, not spots), a payload is small (< 8000 bytes), and losing an event while the database
is away is acceptable: every one of them is also readable over the HTTP API. Every event takes this one
path, even in a single process, so the tests exercise what production runs.

Announcements and talks from a page travel on POST_CHANNEL to the process that owns the node's cluster
board (the single process, or worker 0), which applies the cluster port's rules: a talk only to a call
that is reachable, the same posts-per-minute limit, DXSpider's duplicate check. Bulletins posted on
the board (from telnet users, peers, links or pages) come back to every page of the node.

Everything is bounded: each connection has a queue of `queue` messages (a page that does not read is
closed with CLOSE_TOO_SLOW, never buffered), a user may hold `per_user` connections per process, the
NOTIFY sender drops past `outgoing` waiting events (counted), posts wait in a queue of their own.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from itertools import count
from typing import Any

import trio

from hamsrv.bus import wire
from hamsrv.db import accounts
from hamsrv.db.database import Database
from hamsrv.db.notify import MAX_PAYLOAD, listen_forever, notify
from hamsrv.errors import DatabaseError
from hamsrv.firehose.bulletins import Board, Posted, Talk
from hamsrv.firehose.cluster import Announce
from hamsrv.firehose.node import ClusterLimits, Reachable, logged_in
from hamsrv.identity.ratelimit import Buckets, Rate, retry_after
from hamsrv.metrics import Registry

log = logging.getLogger(__name__)

QUEUE = 64  # messages waiting for one page
PER_USER = 8  # connections of one user on one process (tabs, phone, ...)
OUTGOING = 1000  # events waiting for their NOTIFY
POSTS_WAITING = 100  # page posts waiting for the board owner


class BusFull(Exception):
    """The user has PER_USER connections here already."""


class BusConnection:
    """One page: its messages wait in a bounded queue for the WebSocket writer."""

    def __init__(self, ref: str, user_id: int, call: str, queue: int, on_stall: Callable[[], None]):
        self.ref, self.user_id, self.call = ref, user_id, call
        self.outbox, self.inbox = trio.open_memory_channel[str](queue)
        self.stalled = trio.Event()
        self._on_stall = on_stall

    def push(self, text: str) -> None:
        if self.stalled.is_set():
            return
        try:
            self.outbox.send_nowait(text)
        except trio.WouldBlock:
            self.stalled.set()  # the route closes the connection with CLOSE_TOO_SLOW
            self._on_stall()


class UserBus:
    """See the module docstring. `node` names this node (shared by its workers); `board` and `roster`
    are given to the process that owns the cluster port, `reachable` says whether a call not logged in
    there may still be talked to (it has pages on the bus)."""

    def __init__(self, db: Database, node: str, metrics: Registry, *, board: Board | None = None,
                 roster: dict[str, list[Any]] | None = None, reachable: Reachable | None = None,
                 node_call: str = "HAMSRV", posts_per_minute: int = ClusterLimits.posts_per_minute,
                 queue: int = QUEUE, per_user: int = PER_USER, outgoing: int = OUTGOING):
        self.db, self.node, self.board, self.node_call = db, node, board, node_call.upper()
        self.roster = roster if roster is not None else {}
        self.reachable = reachable
        self.queue, self.per_user = queue, per_user
        self.posts_per_minute = posts_per_minute
        self._instance = secrets.token_hex(6)
        self._numbers = count(1)
        self._by_user: dict[int, set[BusConnection]] = {}
        self._by_call: dict[str, set[BusConnection]] = {}
        self._by_ref: dict[str, BusConnection] = {}
        self._out_send, self._out_receive = trio.open_memory_channel[tuple[str, str]](outgoing)
        self._post_send, self._post_receive = trio.open_memory_channel[wire.PostRequest](POSTS_WAITING)
        self._post_buckets = Buckets(Rate.per_minute(posts_per_minute))
        metrics.gauge("hamsrv_bus_connections", "Pages connected to the user bus", lambda: len(self._by_ref))
        self.too_slow = metrics.counter("hamsrv_bus_too_slow_total", "User bus pages closed for not reading")
        self.lost = metrics.counter("hamsrv_bus_lost_total",
                                    "User bus events not sent (queue full, too large, database away)")

    def statistics(self) -> dict[str, int]:
        return {"connections": len(self._by_ref)}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen for envelopes (and, on the board owner, page posts); send what is queued."""
        channels = [wire.CHANNEL] + ([wire.POST_CHANNEL] if self.board is not None else [])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._send_loop)
            if self.board is not None:
                nursery.start_soon(self._post_loop, self.board)
            await nursery.start(partial(listen_forever, self.db, channels, self._on_note, what="user bus"))
            task_status.started()

    # ---- pages on this process
    @contextmanager
    def connect(self, user_id: int, call: str) -> Iterator[BusConnection]:
        """Register a page for the life of the block; BusFull past `per_user`."""
        if len(self._by_user.get(user_id, ())) >= self.per_user:
            raise BusFull(f"at most {self.per_user} bus connections per user")
        conn = BusConnection(f"{self._instance}.{next(self._numbers)}", user_id, call, self.queue,
                             self.too_slow.inc)
        self._by_user.setdefault(user_id, set()).add(conn)
        self._by_call.setdefault(call, set()).add(conn)
        self._by_ref[conn.ref] = conn
        try:
            yield conn
        finally:
            del self._by_ref[conn.ref]
            _leave(self._by_user, user_id, conn)
            _leave(self._by_call, call, conn)

    def post(self, conn: BusConnection, command: wire.PostCommand) -> None:
        """A page's announcement or talk, to the board owner; the answer comes back to `conn`."""
        self._queue(wire.POST_CHANNEL, wire.post_request(wire.PostRequest(self.node, conn.ref, conn.call, command)))

    # ---- events from anywhere in the process
    def user_event(self, user_id: int, message: dict[str, Any]) -> None:
        self._queue(wire.CHANNEL, wire.for_user(user_id, message))

    def import_progress(self, owner_id: int, event: dict[str, Any]) -> None:
        """JobRunner listener: every import event goes to the owner's pages, wherever they are."""
        self.user_event(owner_id, wire.import_event(event))

    def bulletin_posted(self, posted: Posted) -> None:
        """Board listener: announcements to every page of the node, a talk to its call's pages."""
        message = wire.bulletin_message(posted)
        if message is None:
            return
        call = posted.item.to.split("-")[0] if isinstance(posted.item, Talk) else None
        self._queue(wire.CHANNEL, wire.for_node(self.node, message, call))

    def _queue(self, channel: str, payload: str) -> None:
        if len(payload.encode()) > MAX_PAYLOAD:
            log.warning("user bus: a %d-byte event is too large for NOTIFY, dropped", len(payload))
            self.lost.inc()
            return
        try:
            self._out_send.send_nowait((channel, payload))
        except trio.WouldBlock:
            self.lost.inc()

    async def _send_loop(self) -> None:
        async for channel, payload in self._out_receive:  # one sender: events keep their order
            try:
                await notify(self.db, channel, payload)
            except DatabaseError as exc:
                log.warning("user bus: event not sent: %s", exc)
                self.lost.inc()

    # ---- notifications from every process
    def _on_note(self, channel: str, payload: str) -> None:
        if channel == wire.POST_CHANNEL:
            request = wire.read_post_request(payload)
            if request is not None and request.node == self.node:
                try:
                    self._post_send.send_nowait(request)
                except trio.WouldBlock:
                    self.lost.inc()
            return
        envelope = wire.read_envelope(payload)
        if envelope is None:
            return
        if envelope.conn is not None:
            found = self._by_ref.get(envelope.conn)
            targets: Any = [found] if found is not None else []
        elif envelope.user is not None:
            targets = self._by_user.get(envelope.user, ())
        elif envelope.node != self.node:
            return  # another node's bulletin: its own pages get it
        elif envelope.call is not None:
            targets = self._by_call.get(envelope.call, ())
        else:
            targets = self._by_ref.values()
        for conn in list(targets):
            conn.push(envelope.text)

    # ---- the board owner
    async def _post_loop(self, board: Board) -> None:
        async for request in self._post_receive:
            error = await self._take_post(board, request)
            self._queue(wire.CHANNEL, wire.for_connection(request.conn, wire.answer(request.command.ref, error)))

    async def _take_post(self, board: Board, request: wire.PostRequest) -> str | None:
        """The cluster port's rules (node.py `_post`): talk only to a reachable call, the per-user
        posts rate, the board's duplicate check. Returns the refusal in the cluster port's words."""
        command = request.command
        if command.kind == "talk" and not await self._can_talk_to(command.to):
            return f"callsign {command.to} not visible on the cluster"
        wait = self._post_buckets.take(request.call, trio.current_time())
        if wait > 0:
            return (f"too many announcements: at most {self.posts_per_minute} a minute from one user; "
                    f"try again in {retry_after(wait)} s")
        item = (Announce(request.call, command.to, command.text) if command.kind == "announce"
                else Talk(request.call, command.to, command.text))
        if board.post(item, source=f"web:{request.call}", origin=self.node_call) is None:
            return "Sorry, this is a duplicate"
        return None

    async def _can_talk_to(self, call: str) -> bool:
        return logged_in(self.roster, call) or (self.reachable is not None and await self.reachable(call))


def _leave(index: dict[Any, set[BusConnection]], key: object, conn: BusConnection) -> None:
    group = index[key]
    group.discard(conn)
    if not group:
        del index[key]


async def has_account(db: Database, call: str) -> bool:
    """Whether a call has a hamsrv account, whose pages a talk reaches (False when the database is away)."""
    try:
        return await accounts.user_by_call(db, call.split("-")[0]) is not None
    except DatabaseError:
        return False
