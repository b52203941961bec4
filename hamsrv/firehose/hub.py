"""The spot hub: every ingress publishes here; every egress (WebSocket fast path, telnet users,
Redis bridge) reads the ring once per tick.

publish() is synchronous and cheap (prepare, append to the ring); the ticker wakes consumers at most
once per tick so that a burst of spots costs one wake-up and one write per client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import trio

from hamsrv.firehose.ring import RingEntry, SpotRing
from hamsrv.metrics import Registry
from hamsrv.model import Spot

DEFAULT_TICK = 0.05  # seconds; 50 ms batching is what carried 5 M deliveries/s in the prototype

TickListener = Callable[[list[RingEntry]], None]


@dataclass(frozen=True, slots=True)
class HubStatistics:
    """What /metrics shows of the hub (trio's `statistics()` convention)."""

    spots_in: int  # spots accepted into the ring
    duplicates: int  # spots dropped as duplicates
    ring_spots: int  # spots held in the ring now
    announced_seq: int  # newest sequence number announced to tick listeners


class Hub:
    def __init__(self, ring: SpotRing | None = None, *, tick: float = DEFAULT_TICK,
                 prepare: Callable[[Spot], Spot | None] | None = None,
                 metrics: Registry | None = None):
        """`prepare` enriches a spot and returns None for a duplicate (it is then dropped)."""
        self.ring = ring if ring is not None else SpotRing()  # an empty ring is falsy
        self.tick = tick
        self.prepare = prepare
        self._tick_listeners: list[TickListener] = []
        self._tick_sources: list[Callable[[], None]] = []
        self._announced = 0  # last sequence number consumers were woken for
        self._wakeup = trio.Event()
        m = metrics or Registry()
        self.spots_in = m.counter("hamsrv_spots_in_total", "Spots accepted into the ring")
        self.spots_dupe = m.counter("hamsrv_spots_duplicate_total", "Spots dropped as duplicates")
        m.gauge("hamsrv_ring_spots", "Spots held in the ring", lambda: self.statistics().ring_spots)

    def statistics(self) -> HubStatistics:
        return HubStatistics(int(self.spots_in.value), int(self.spots_dupe.value), len(self.ring), self._announced)

    def publish(self, spot: Spot) -> RingEntry | None:
        """Put a spot on the firehose; returns its ring entry, or None when dropped as a duplicate."""
        if self.prepare is not None:
            prepared = self.prepare(spot)
            if prepared is None:
                self.spots_dupe.inc()
                return None
            spot = prepared
        self.spots_in.inc()
        return self.ring.append(spot, trio.current_time())

    @property
    def announced_seq(self) -> int:
        """Newest sequence number tick listeners were given: a cursor that reaches it is live."""
        return self._announced

    def add_tick_listener(self, listener: TickListener) -> None:
        """Call `listener(new_entries)` synchronously each tick that has new spots (for the hub's life)."""
        self._tick_listeners.append(listener)

    def add_tick_source(self, source: Callable[[], None]) -> None:
        """Call `source()` at the start of every tick, before its spots go out: an ingress that publishes
        what arrived since the last tick there (a feed) costs no wake-up of its own and adds no delay."""
        self._tick_sources.append(source)

    def remove_tick_source(self, source: Callable[[], None]) -> None:
        self._tick_sources.remove(source)

    async def wait_after(self, seq: int) -> None:
        """Sleep until a tick announces spots newer than `seq` (returns at once if already announced)."""
        while self._announced <= seq:
            await self._wakeup.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        deadline = trio.current_time()
        while True:
            deadline += self.tick
            now = trio.current_time()
            if deadline < now:  # we fell behind (e.g. a long GC): do not try to catch up in a burst
                deadline = now
            await trio.sleep_until(deadline)
            self.flush_tick()

    def flush_tick(self) -> None:
        """Announce everything appended since the last tick (also used by tests and at shutdown)."""
        for source in list(self._tick_sources):
            source()
        self.ring.trim(trio.current_time())
        if self.ring.last_seq <= self._announced:
            return
        new = self.ring.after(self._announced)
        self._announced = self.ring.last_seq
        for listener in list(self._tick_listeners):
            listener(new)
        self._wakeup.set()
        self._wakeup = trio.Event()
