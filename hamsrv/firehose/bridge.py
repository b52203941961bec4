"""Cross-node fan-out through one capped Redis Stream (the only thing hamsrv uses Redis for).

Each node appends the spots it ingested itself (msgpack, with its node id and ring sequence number)
and reads every other node's entries from the last stream id it has seen. A node that loses Redis
keeps its cursors: when Redis returns it sends what it ingested meanwhile (from its own ring) and reads
what the others sent (from the stream), so nothing is lost or duplicated within the stream's retention.
Spots never echo back: entries carry the origin node id, and spots that came from Redis are never sent
again. A spot two nodes heard from two feeds is dropped by the hub's usual duplicate rule.
"""

from __future__ import annotations

import logging
import math
import secrets
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import msgpack
import trio

from hamsrv.firehose.hub import Hub
from hamsrv.firehose.resp import Redis, RedisError
from hamsrv.model import Spot, valid_khz

log = logging.getLogger(__name__)

STREAM = "hamsrv:spots"
DEFAULT_MAXLEN = 100_000  # stream entries kept: about 4 h at seven spots a second
_BATCH = 500
_BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0)


def spot_fields(spot: Spot) -> dict[str, Any]:
    """Every Spot field but the ring id, msgpack-ready (time as POSIX seconds)."""
    body: dict[str, Any] = {f.name: getattr(spot, f.name) for f in fields(Spot) if f.name != "id"}
    body["time"] = spot.time.timestamp()
    return body


def spot_from_fields(body: Any) -> Spot:
    """The inverse of spot_fields; raises ValueError for anything else."""
    try:
        values = dict(body)
        when = float(values.pop("time"))
        if not math.isfinite(when):
            raise ValueError("time is not finite")
        values["freq"] = valid_khz(values.get("freq"))  # the one frequency check, as for every way in
        if values["freq"] is None:
            raise ValueError("freq is not a frequency")
        known = {f.name for f in fields(Spot)}
        return Spot(time=datetime.fromtimestamp(when, UTC), **{k: v for k, v in values.items() if k in known})
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"not a spot: {exc}") from None


def spot_to_wire(spot: Spot, node: str, seq: int) -> bytes:
    """A stream entry: msgpack of the spot's fields plus the origin node and its sequence number."""
    return msgpack.packb({"node": node, "seq": seq, "spot": spot_fields(spot)})


def spot_from_wire(data: bytes) -> tuple[str, int, Spot]:
    """(node, seq, spot); raises ValueError for anything that is not a spot entry of ours."""
    try:
        entry = msgpack.unpackb(data)
        return str(entry["node"]), int(entry["seq"]), spot_from_fields(entry["spot"])
    except (KeyError, TypeError, ValueError, msgpack.UnpackException) as exc:
        raise ValueError(f"not a hamsrv spot entry: {exc}") from None


@dataclass
class BridgeStats:
    sent: int = 0
    received: int = 0
    bad_entries: int = 0
    lost: int = 0  # own spots that left the ring before Redis came back
    connected: bool = False
    last_error: str | None = None


class Bridge:
    """Runs two loops in its own nursery: our spots -> stream, other nodes' spots -> our hub."""

    def __init__(self, hub: Hub, url: str, *, node_id: str | None = None, stream: str = STREAM,
                 maxlen: int = DEFAULT_MAXLEN, block_ms: int = 1000):
        self.hub = hub
        self.url = url
        self.node_id = node_id or secrets.token_hex(6)
        self.stream = stream
        self.maxlen = maxlen
        self.block_ms = block_ms
        self.stats = BridgeStats()
        self._sent_seq = hub.ring.last_seq  # history from before start is not ours to replay
        self._last_id = "$"  # first read: only what arrives from now on
        self._from_redis: set[int] = set()  # ring seqs of spots that came from other nodes

    def statistics(self) -> dict[str, object]:
        return {"node": self.node_id, **vars(self.stats)}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self._keep, self._read_loop, "read")
            await nursery.start(self._keep, self._send_loop, "send")
            task_status.started()

    async def _keep(self, loop: Any, what: str, *, task_status: trio.TaskStatus[None]) -> None:
        """Run `loop` on a fresh connection, reconnecting with backoff; Redis trouble never ends it."""
        attempt = 0
        task_status.started()
        while True:
            try:
                async with await Redis.connect(self.url, key=self.stream) as redis:
                    if what == "read" and self._last_id == "$":
                        self._last_id = await self._stream_end(redis)
                    self.stats.connected, attempt = True, 0
                    await loop(redis)
            except RedisError as exc:
                if self.stats.last_error != str(exc):
                    log.warning("redis bridge (%s): %s", what, exc)
                self.stats.connected, self.stats.last_error = False, str(exc)
            await trio.sleep(_BACKOFF[min(attempt, len(_BACKOFF) - 1)])
            attempt += 1

    async def _stream_end(self, redis: Redis) -> str:
        """The id of the stream's newest entry (or 0-0): where a fresh node starts reading."""
        last = await redis.command("XREVRANGE", self.stream, "+", "-", "COUNT", 1)
        return last[0][0].decode() if isinstance(last, list) and last else "0-0"

    async def _send_loop(self, redis: Redis) -> None:
        ring = self.hub.ring
        while True:
            await self.hub.wait_after(self._sent_seq)
            if self._sent_seq + 1 < ring.first_seq:  # Redis was away longer than the ring holds
                self.stats.lost += ring.first_seq - self._sent_seq - 1
                self._sent_seq = ring.first_seq - 1
            entries = ring.after(self._sent_seq, _BATCH)
            ours = [e for e in entries if e.seq not in self._from_redis]
            if ours:
                await redis.pipeline([
                    ("XADD", self.stream, "MAXLEN", "~", self.maxlen, "*", "d",
                     spot_to_wire(e.spot, self.node_id, e.seq)) for e in ours])
                self.stats.sent += len(ours)
            if entries:
                self._sent_seq = entries[-1].seq
                self._from_redis.difference_update(e.seq for e in entries)

    async def _read_loop(self, redis: Redis) -> None:
        while True:
            reply = await redis.command("XREAD", "COUNT", _BATCH, "BLOCK", self.block_ms,
                                        "STREAMS", self.stream, self._last_id)
            if not reply:
                continue
            before = self.stats.received
            for _key, items in reply:  # type: ignore[attr-defined]
                for entry_id, values in items:
                    self._last_id = entry_id.decode()
                    self._receive(dict(zip(values[::2], values[1::2], strict=True)).get(b"d", b""))
            if self.stats.received != before:
                # These spots already waited for a tick on their node: announce them now rather than
                # make them wait for a second one here (Redis delivers at most one batch per remote tick).
                self.hub.flush_tick()

    def _receive(self, data: bytes) -> None:
        try:
            node, _seq, spot = spot_from_wire(data)
        except ValueError as exc:
            self.stats.bad_entries += 1
            log.warning("redis bridge: skipped an entry: %s", exc)
            return
        if node == self.node_id:
            return
        entry = self.hub.publish(spot)
        if entry is not None:
            self._from_redis.add(entry.seq)
            self.stats.received += 1
