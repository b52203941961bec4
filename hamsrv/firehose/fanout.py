"""The `/ws/firehose` fast path: filter groups, one frame per group per tick, direct non-blocking writes.

Why it looks like this (DESIGN.md 2 and 3): per tick, each group of clients sharing a filter gets one
frame built from the ring's pre-encoded spot bytes, and that same frame is written to every member with
one non-blocking `write` and no await. Only a client whose kernel buffer is full gets bytes queued, and
its writer task waits for the socket to become writable.

Slow clients: a client's queued bytes are bounded by `max_pending`. When a tick's frame would exceed it,
the client switches to *behind* mode: its queued spot frames are dropped (a frame already half written is
kept, so framing stays intact) and it becomes a cursor into the spot ring. Its writer replays from the
ring, one bounded frame at a time, only when the socket has taken everything else; when the cursor
reaches the live position the client rejoins its group. If the ring has moved past the cursor the
client first gets a gap message. So server memory per slow client is at most one frame, never a queue.
Replies to the client's own messages (pong, subscribed, error) are bounded by `max_pending` too: a client
that keeps sending but never reads is closed (1008). Only pongs count as signs of life: a client that
stops answering pings is closed (1008) by the keepalive, whatever else it sends.

TLS streams have no file descriptor we may write to: their frames always go through the same bounded
queue and are sent by the writer task with `send_all` (correct; not the fast path).
"""

from __future__ import annotations

import enum
import itertools
import json
import os
import struct
import time
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import msgpack
import trio

from hamsrv.errors import InputError
from hamsrv.firehose import ws
from hamsrv.firehose.filters import EVERYTHING, SpotFilter, parse_query, parse_subscribe
from hamsrv.firehose.hub import Hub
from hamsrv.firehose.ring import RingEntry, spot_to_dict
from hamsrv.metrics import Registry

MSGPACK_SUBPROTOCOL = "hamsrv.msgpack"

DEFAULT_MAX_PENDING = 1 << 20  # bytes queued for one client before it becomes a ring cursor
DEFAULT_PER_IP_LIMIT = 200
DEFAULT_PING_INTERVAL = 30.0
DEFAULT_PONG_TIMEOUT = 60.0
DEFAULT_CLOSE_TIMEOUT = 5.0  # how long a closing handshake may take before we hang up
REPLAY_FRAME_SPOTS = 500  # replay (since= and behind clients) goes out in frames of bounded size
REPLAY_FRAME_BYTES = 64 * 1024
REPLAY_CACHE_SIZE = 256  # replay frames kept per tick, shared by clients at the same ring position
REPLAY_SCAN = 4096  # ring entries examined per replay step, so a narrow filter cannot hog the loop
RECEIVE_SIZE = 16384
WRITEV_BUFFERS = 64



# ---------------------------------------------------------------- frames (pure)

def control_frame(message: Mapping[str, object]) -> bytes:
    """Control messages are JSON objects in text frames; spot frames are arrays."""
    return ws.encode_frame(ws.OP_TEXT, json.dumps(message, separators=(",", ":")).encode())


def _json_parts(entries: Sequence[RingEntry]) -> list[bytes]:
    """A JSON array of the ring's pre-encoded spots (nothing is re-encoded)."""
    return [b"[", b",".join([e.json for e in entries]), b"]"]


def _packed(entry: RingEntry) -> bytes:
    if entry.packed is None:
        entry.packed = msgpack.packb(spot_to_dict(entry.spot))
    return entry.packed


def _msgpack_parts(entries: Sequence[RingEntry]) -> list[bytes]:
    """A msgpack array of spot maps, each map encoded once and shared."""
    n = len(entries)
    header = (bytes((0x90 | n,)) if n < 16 else struct.pack("!BH", 0xDC, n) if n < 0x10000
              else struct.pack("!BI", 0xDD, n))
    return [header, *map(_packed, entries)]


def spot_frame(entries: Sequence[RingEntry], binary: bool, window_bits: int = 0) -> bytes:
    """One frame of spots: JSON text, or msgpack binary; compressed on its own (permessage-deflate with
    no context takeover) when `window_bits` is set, so the same bytes suit every client of a group."""
    parts = _msgpack_parts(entries) if binary else _json_parts(entries)
    opcode = ws.OP_BINARY if binary else ws.OP_TEXT
    if window_bits:
        payload = ws.deflate_message(b"".join(parts), window_bits)
        return ws.frame_header(opcode, len(payload), compressed=True) + payload
    return b"".join((ws.frame_header(opcode, sum(map(len, parts))), *parts))


# ---------------------------------------------------------------- connections

class State(enum.Enum):
    """Where a connection is in its life. `_MOVES` lists every allowed transition (as h11's _state.py
    does), and `Firehose._move` is the only place that changes a client's state."""

    LIVE = "live"  # in its filter group: gets each tick's frame
    BEHIND = "behind"  # a cursor into the ring: joined with an old `since`, or too slow for live frames
    CLOSING = "closing"  # our close frame is queued: no more spots, reading until the client's close
    FINISHING = "finishing"  # reading is over: flush what is queued, half-close, wait for the hang-up
    DEAD = "dead"  # nothing more is written: the socket broke, or the connection is being forgotten


_MOVES: dict[State, frozenset[State]] = {
    State.LIVE: frozenset((State.BEHIND, State.CLOSING, State.FINISHING, State.DEAD)),  # slow / close / EOF / broken
    State.BEHIND: frozenset((State.LIVE, State.CLOSING, State.FINISHING, State.DEAD)),  # caught up / ...
    State.CLOSING: frozenset((State.FINISHING, State.DEAD)),  # client answered (or timed out) / broken
    State.FINISHING: frozenset((State.DEAD,)),
    State.DEAD: frozenset(),
}
_OPEN = frozenset((State.LIVE, State.BEHIND))  # states in which we still talk to the client


class _Client:
    """One connection. `pending` holds (frame, prev_seq) items not yet fully written; prev_seq is the
    ring position before a spot frame (None for control frames), so dropping frames yields a cursor."""

    __slots__ = ("stream", "fd", "filter", "binary", "window_bits", "group", "pending", "head_offset", "pending_bytes",
                 "state", "cursor", "flushed", "wakeup", "scope", "read_scope", "keepalive_scope", "last_heard")

    def __init__(self, stream: trio.abc.Stream, spot_filter: SpotFilter, binary: bool, window_bits: int):
        self.stream = stream
        # Only a plain socket may be written directly; TLS and other streams go through send_all.
        self.fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1
        self.filter = spot_filter
        self.binary = binary
        self.window_bits = window_bits  # permessage-deflate negotiated (its window), or 0
        self.group: _Group | None = None
        self.pending: deque[tuple[bytes, int | None]] = deque()
        self.head_offset = 0  # bytes of pending[0] already written
        self.pending_bytes = 0
        self.state = State.BEHIND  # until `_serve` decides: at once LIVE, or replaying from `since`
        self.cursor = 0  # meaningful while BEHIND: last ring seq queued to this client
        self.flushed = trio.Event()  # set by the writer once FINISHING and everything is written
        self.wakeup = trio.Event()
        self.scope = trio.CancelScope()
        self.read_scope = trio.CancelScope()
        self.keepalive_scope = trio.CancelScope()
        self.last_heard = trio.current_time()


GroupKey = tuple[SpotFilter, bool, int]  # filter, msgpack, deflate window bits (0: plain)


class _Group:
    """Clients that get byte-identical spot frames: one frame is built (and compressed) per tick."""

    __slots__ = ("key", "members")

    def __init__(self, key: GroupKey):
        self.key = key
        self.members: set[_Client] = set()


@dataclass(frozen=True, slots=True)
class FirehoseStatistics:
    clients: int
    groups: int
    behind: int  # clients currently reading from the ring instead of live
    gaps: int  # gap messages sent (clients that lost spots to the ring window)
    closes: int  # connections ended, for any reason
    timeouts: int  # closed by the keepalive (no pong: a client that stopped reading)


class Firehose:
    """Serves `/ws/firehose`; create once, call `handle` for each upgrade request the listener sees."""

    def __init__(self, hub: Hub, *, metrics: Registry | None = None,
                 max_pending: int = DEFAULT_MAX_PENDING, per_ip_limit: int = DEFAULT_PER_IP_LIMIT,
                 ping_interval: float = DEFAULT_PING_INTERVAL, pong_timeout: float = DEFAULT_PONG_TIMEOUT,
                 close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
                 allowed_origins: Collection[str] | None = None,
                 max_message_size: int = ws.DEFAULT_MAX_MESSAGE):
        self.hub = hub
        self.max_pending = max_pending
        self.per_ip_limit = per_ip_limit
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.close_timeout = close_timeout
        self.allowed_origins = None if allowed_origins is None else frozenset(o.lower() for o in allowed_origins)
        self.max_message_size = max_message_size
        self._clients: set[_Client] = set()
        self._groups: dict[GroupKey, _Group] = {}
        self._replay_cache: dict[tuple[GroupKey, int], tuple[bytes | None, int]] = {}
        self._replay_live = -1  # the live position the cached replay frames were built for
        self._per_ip: dict[str, int] = {}
        self._shutting_down = False
        self._all_gone: trio.Event | None = None
        m = metrics or Registry()
        m.gauge("hamsrv_firehose_clients", "Open firehose WebSocket connections", lambda: len(self._clients))
        m.gauge("hamsrv_firehose_groups", "Distinct filter groups", lambda: len(self._groups))
        m.gauge("hamsrv_firehose_behind_clients", "Clients replaying from the ring", self._count_behind)
        self.deliveries = m.counter("hamsrv_firehose_spots_out_total", "Spot deliveries (spots x clients)")
        self.frames = m.counter("hamsrv_firehose_frames_total", "Spot frames handed to clients")
        self.bytes_out = m.counter("hamsrv_firehose_bytes_total", "Spot frame bytes handed to clients")
        self.compressions = m.counter("hamsrv_firehose_compressions_total",
                                      "Spot frames compressed (once per deflate group and tick, whatever its size)")
        self.gaps = m.counter("hamsrv_firehose_gaps_total", "Gap messages (spots lost to the ring window)")
        self.fell_behind = m.counter("hamsrv_firehose_slow_total", "Times a client's queue overflowed")
        self.timeouts = m.counter("hamsrv_firehose_slow_closes_total",
                                  "Clients closed by the keepalive (stopped reading or vanished)")
        self.closes = m.counter("hamsrv_firehose_closes_total", "Firehose connections ended")
        self.rejected = m.counter("hamsrv_firehose_rejected_total", "Upgrade requests refused")
        self.fanout_seconds = m.counter("hamsrv_firehose_fanout_seconds_total", "Time spent in tick fan-out")
        hub.add_tick_listener(self._on_tick)

    def _count_behind(self) -> float:
        return sum(1 for c in self._clients if c.state is State.BEHIND)

    def statistics(self) -> FirehoseStatistics:
        return FirehoseStatistics(len(self._clients), len(self._groups), int(self._count_behind()),
                                  int(self.gaps.value), int(self.closes.value), int(self.timeouts.value))

    # ------------------------------------------------------------ connection lifecycle

    async def handle(self, stream: trio.abc.Stream, head: bytes, peer_ip: str) -> None:
        """Serve one upgrade request until the connection ends; always closes `stream`."""
        already = self._per_ip.get(peer_ip, 0)
        self._per_ip[peer_ip] = already + 1
        try:
            await self._serve(stream, head, already)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the peer went away while we answered its handshake
        finally:
            left = self._per_ip.pop(peer_ip) - 1
            if left:
                self._per_ip[peer_ip] = left
            await trio.aclose_forcefully(stream)

    async def _serve(self, stream: trio.abc.Stream, head: bytes, already_from_ip: int) -> None:
        if self._shutting_down:
            return await self._refuse(stream, ws.http_error(503, "server is shutting down"))
        if already_from_ip >= self.per_ip_limit:
            return await self._refuse(stream, ws.http_error(
                429, f"too many firehose connections from your address (limit {self.per_ip_limit})"))
        upgrade = ws.accept_upgrade(head, subprotocols=(MSGPACK_SUBPROTOCOL,),
                                    allowed_origins=self.allowed_origins)
        if isinstance(upgrade, ws.Rejection):
            return await self._refuse(stream, upgrade.response)
        try:
            spot_filter, since = parse_query(urlsplit(upgrade.target).query)
        except InputError as exc:
            return await self._refuse(stream, ws.http_error(400, str(exc)))
        client = _Client(stream, spot_filter, upgrade.subprotocol == MSGPACK_SUBPROTOCOL,
                         upgrade.deflate.window_bits if upgrade.deflate else 0)
        # The 101 goes through the client's queue, and the client joins the fan-out in the same step,
        # so no tick can slip a frame in before it and none is missed after it.
        self._send(client, upgrade.response)
        self._clients.add(client)
        # Replay runs up to the last announced spot and the next tick brings the rest, so `since`
        # never needs an early tick (which would let clients defeat the batching).
        live = self.hub.announced_seq
        if since is not None and not self.hub.ring.resumable(since, live):  # ids of another life: say so
            self._send(client, control_frame({"type": "reset", "since": since, "last_id": live}))
            since = None  # and go live
        if since is None or since >= live:
            self._move(client, State.LIVE)
        else:
            client.cursor = since
        try:
            with client.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write_loop, client)
                    nursery.start_soon(self._keepalive, client)
                    await self._read_loop(client, upgrade.trailing)
                    await self._finish(client)
                    nursery.cancel_scope.cancel()
        finally:
            self._forget(client)

    async def _finish(self, c: _Client) -> None:
        """After reading ends: flush what is queued (the close frame), half-close, and read until the
        client hangs up, so unread client bytes cannot turn our close into a reset; bounded in time."""
        if c.state is State.DEAD:
            return
        self._move(c, State.FINISHING)
        c.keepalive_scope.cancel()
        c.wakeup.set()
        with trio.move_on_after(self.close_timeout):
            await c.flushed.wait()
            try:
                if isinstance(c.stream, trio.abc.HalfCloseableStream):
                    await c.stream.send_eof()
                while await c.stream.receive_some(RECEIVE_SIZE):
                    pass
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    async def _refuse(self, stream: trio.abc.Stream, response: bytes) -> None:
        self.rejected.inc()
        with trio.move_on_after(self.close_timeout):
            await stream.send_all(response)

    def _forget(self, c: _Client) -> None:
        """Unregister before the socket closes, so no direct write can reach a reused descriptor."""
        if c.state is not State.DEAD:
            self._move(c, State.DEAD)
        self._clients.discard(c)
        self.closes.inc()
        if self._all_gone is not None and not self._clients:
            self._all_gone.set()

    async def close_all(self, code: int = ws.CloseCode.GOING_AWAY, reason: str = "server shutting down") -> None:
        """Graceful shutdown: refuse new clients, send everybody a close frame, wait, then hang up."""
        self._shutting_down = True
        self._all_gone = trio.Event()
        if not self._clients:
            return
        for c in list(self._clients):
            self._close(c, code, reason)
        with trio.move_on_after(2 * self.close_timeout):
            await self._all_gone.wait()
        for c in list(self._clients):
            c.scope.cancel()
        await self._all_gone.wait()

    # ------------------------------------------------------------ states and groups

    def _move(self, c: _Client, new: State) -> None:
        """The one place a client changes state; group membership and the queue follow the state."""
        if new not in _MOVES[c.state]:
            raise RuntimeError(f"firehose client cannot go from {c.state.name} to {new.name}")
        if c.state is State.LIVE:
            self._ungroup(c)
        c.state = new
        if new is State.LIVE:
            self._group(c)
        elif new is State.DEAD:
            c.pending.clear()
            c.pending_bytes = 0

    def _group(self, c: _Client) -> None:
        key = (c.filter, c.binary, c.window_bits)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(key)
        group.members.add(c)
        c.group = group

    def _ungroup(self, c: _Client) -> None:
        group = c.group
        if group is not None:
            group.members.discard(c)
            c.group = None
            if not group.members:
                del self._groups[group.key]

    def _drop_queued_spots(self, c: _Client) -> int | None:
        """Drop queued spot frames not yet started; returns the ring position before the first dropped."""
        first_dropped: int | None = None
        kept: deque[tuple[bytes, int | None]] = deque()
        for i, (data, prev_seq) in enumerate(c.pending):
            if prev_seq is None or (i == 0 and c.head_offset):
                kept.append((data, prev_seq))
            else:
                if first_dropped is None:
                    first_dropped = prev_seq
                c.pending_bytes -= len(data)
        c.pending = kept
        return first_dropped

    def _fall_behind(self, c: _Client, tick_prev_seq: int) -> None:
        first_dropped = self._drop_queued_spots(c)
        self._move(c, State.BEHIND)
        c.cursor = tick_prev_seq if first_dropped is None else first_dropped
        self.fell_behind.inc()
        c.wakeup.set()

    def _close(self, c: _Client, code: int | None, reason: str) -> None:
        """Start (or answer) the closing handshake: no more spots, the close frame after what is queued."""
        if c.state not in _OPEN:
            return
        self._move(c, State.CLOSING)
        self._drop_queued_spots(c)
        self._send(c, ws.close_frame(code, reason))
        c.read_scope.deadline = min(c.read_scope.deadline, trio.current_time() + self.close_timeout)

    def _abort(self, c: _Client) -> None:
        """The connection is broken: stop everything for this client now."""
        if c.state is not State.DEAD:
            self._move(c, State.DEAD)
        c.scope.cancel()

    # ------------------------------------------------------------ writing

    def _send(self, c: _Client, data: bytes, prev_seq: int | None = None) -> None:
        """Write now with one non-blocking syscall when nothing is queued; else queue behind the rest."""
        if c.state is State.DEAD:
            return
        written = 0
        if c.fd >= 0 and not c.pending:
            try:
                written = os.write(c.fd, data)
            except BlockingIOError:
                pass
            except OSError:
                return self._abort(c)
            if written == len(data):
                return
            c.head_offset = written
        c.pending.append((data, prev_seq))
        c.pending_bytes += len(data) - written
        c.wakeup.set()

    def _on_tick(self, new: list[RingEntry]) -> None:
        """Hub tick listener (synchronous): one frame per group, the same bytes to every member."""
        started = time.perf_counter()
        tick_prev_seq = new[0].seq - 1
        for group in list(self._groups.values()):
            spot_filter, binary, window_bits = group.key
            matching = new if spot_filter == EVERYTHING else [e for e in new if spot_filter.matches(e.spot)]
            if not matching:
                continue
            frame = self._frame(matching, binary, window_bits)
            size, sent = len(frame), 0
            for c in tuple(group.members):
                if c.pending_bytes and c.pending_bytes + size > self.max_pending:
                    self._fall_behind(c, tick_prev_seq)
                else:
                    self._send(c, frame, tick_prev_seq)
                    sent += 1
            self.frames.inc(sent)
            self.deliveries.inc(sent * len(matching))
            self.bytes_out.inc(sent * size)
        self.fanout_seconds.inc(time.perf_counter() - started)

    async def _write_loop(self, c: _Client) -> None:
        while True:
            if c.pending:
                await (self._flush_direct(c) if c.fd >= 0 else self._flush_stream(c))
            elif c.state is State.BEHIND:
                self._replay_step(c)
                await trio.lowlevel.checkpoint()
            elif c.state is State.FINISHING:
                return c.flushed.set()
            else:
                await c.wakeup.wait()
                c.wakeup = trio.Event()

    async def _flush_direct(self, c: _Client) -> None:
        stream = c.stream
        assert isinstance(stream, trio.SocketStream)
        await trio.lowlevel.wait_writable(stream.socket)
        if not c.pending:
            return
        first = memoryview(c.pending[0][0])[c.head_offset:]
        buffers = [first, *(data for data, _ in itertools.islice(c.pending, 1, WRITEV_BUFFERS))]
        try:
            written = os.writev(c.fd, buffers)
        except BlockingIOError:
            return
        except OSError:
            return self._abort(c)
        c.pending_bytes -= written
        while written:
            left = len(c.pending[0][0]) - c.head_offset
            if written < left:
                c.head_offset += written
                break
            written -= left
            c.pending.popleft()
            c.head_offset = 0

    async def _flush_stream(self, c: _Client) -> None:
        """TLS (or any non-socket stream): send everything queued with one send_all."""
        first, _ = c.pending.popleft()
        parts = [memoryview(first)[c.head_offset:], *(data for data, _ in c.pending)]
        c.pending.clear()
        c.pending_bytes = c.head_offset = 0
        try:
            await c.stream.send_all(b"".join(parts))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._abort(c)

    def _replay_step(self, c: _Client) -> None:
        """Queue the next bounded replay frame for a client that reads from the ring (after a gap message
        when the ring no longer holds its position); put it back into the live fan-out once caught up."""
        ring, live = self.hub.ring, self.hub.announced_seq
        if c.cursor < ring.first_seq - 1:
            oldest_missing, last_missing = c.cursor + 1, min(ring.first_seq - 1, live)
            self._send(c, control_frame({"type": "gap", "from": oldest_missing, "to": last_missing}))
            self.gaps.inc()
            c.cursor = last_missing
        if self._replay_live != live:  # a new tick: frames cached for the old live position are stale
            self._replay_cache.clear()
            self._replay_live = live
        start = c.cursor
        key = ((c.filter, c.binary, c.window_bits), start)
        step = self._replay_cache.get(key)
        if step is None:  # clients that fell behind together sit at the same cursor: build the frame once
            step = self._replay_cache[key] = self._replay_frame(key[0], start, live)
            if len(self._replay_cache) > REPLAY_CACHE_SIZE:
                self._replay_cache.clear()
        frame, c.cursor = step
        if frame is not None:
            self._send(c, frame, start)
        if c.cursor >= live and c.state is State.BEHIND:
            self._move(c, State.LIVE)

    def _frame(self, entries: Sequence[RingEntry], binary: bool, window_bits: int) -> bytes:
        if window_bits:
            self.compressions.inc()
        return spot_frame(entries, binary, window_bits)

    def _replay_frame(self, key: GroupKey, cursor: int, live: int) -> tuple[bytes | None, int]:
        """The next bounded replay frame after `cursor` (None when nothing matched) and the new cursor."""
        spot_filter, binary, window_bits = key
        matched, size = [], 0
        for entry in self.hub.ring.after(cursor, REPLAY_SCAN):
            if entry.seq > live:
                break
            cursor = entry.seq
            if spot_filter.matches(entry.spot):
                matched.append(entry)
                size += len(entry.json)
                if len(matched) >= REPLAY_FRAME_SPOTS or size >= REPLAY_FRAME_BYTES:
                    break
        return (self._frame(matched, binary, window_bits) if matched else None), cursor

    # ------------------------------------------------------------ reading and keepalive

    async def _read_loop(self, c: _Client, data: bytes) -> None:
        """Read frames until the client closes, breaks the protocol, or goes away."""
        reader = ws.FrameReader(max_message_size=self.max_message_size, deflate=c.window_bits > 0)
        with c.read_scope:
            while True:
                if data:
                    reader.receive_data(data)
                    while (event := reader.next_event()) is not None:
                        if self._on_event(c, event):
                            return
                try:
                    data = await c.stream.receive_some(RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                if not data:
                    return

    def _on_event(self, c: _Client, event: ws.Event) -> bool:
        """Act on one client event; True when reading is over."""
        if isinstance(event, ws.TextMessage):
            self._on_subscribe(c, event.text)
        elif isinstance(event, ws.Ping):
            if c.state in _OPEN:
                self._reply(c, ws.encode_frame(ws.OP_PONG, event.payload))
        elif isinstance(event, ws.Pong):
            c.last_heard = trio.current_time()
        elif isinstance(event, ws.BinaryMessage):
            self._send_error(c, InputError("binary messages are not understood: send JSON text"))
        elif isinstance(event, ws.Close):
            self._close(c, event.code, "")  # echo the client's code (nothing when it is closing our close)
            return True
        elif isinstance(event, ws.ProtocolError):
            self._close(c, event.code, event.reason)
            return True
        return False

    def _on_subscribe(self, c: _Client, text: str) -> None:
        if c.state not in _OPEN:
            return
        try:
            new_filter = parse_subscribe(text)
        except InputError as exc:
            return self._send_error(c, exc)
        c.filter = new_filter
        if c.state is State.LIVE:  # a BEHIND client picks the new filter up in its next replay step
            self._ungroup(c)
            self._group(c)
        self._reply(c, control_frame({"type": "subscribed", "filter": new_filter.to_dict()}))

    def broadcast(self, message: Mapping[str, object] | None) -> None:
        """A control message for every client (cluster announcements: `{"type": "announce", ...}`);
        bounded like replies, so a client that never reads is closed rather than queued for."""
        if message is None:
            return
        frame = control_frame(message)
        for c in list(self._clients):
            if c.state in _OPEN:
                self._reply(c, frame)

    def _send_error(self, c: _Client, exc: InputError) -> None:
        message: dict[str, object] = {"type": "error", "error": str(exc)}
        if exc.field:
            message["field"] = exc.field
        self._reply(c, control_frame(message))

    def _reply(self, c: _Client, frame: bytes) -> None:
        """Answer a client's message, unless its unread replies pass the limit: then close it (1008)."""
        if c.pending_bytes + len(frame) > self.max_pending:
            self.timeouts.inc()
            return self._close(c, ws.CloseCode.POLICY_VIOLATION, "too many unread replies")
        self._send(c, frame)

    async def _keepalive(self, c: _Client) -> None:
        """Ping every ping_interval; close (1008) a client whose last pong is older than pong_timeout."""
        with c.keepalive_scope:
            while c.state in _OPEN:
                await trio.sleep(self.ping_interval)
                if c.state not in _OPEN:
                    return
                if trio.current_time() - c.last_heard > self.pong_timeout:
                    self.timeouts.inc()
                    return self._close(c, ws.CloseCode.POLICY_VIOLATION, "keepalive timeout: no pong")
                self._send(c, ws.encode_frame(ws.OP_PING, b""))


