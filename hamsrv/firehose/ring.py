"""The spot ring: the last hours of spots, each encoded to JSON once, addressed by sequence number.

Clients are cursors (a sequence number) into the ring, never private queues, so memory depends on the
ring's bounds alone and not on how many clients there are or how slow they read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from hamsrv.model import Spot

DEFAULT_MAX_AGE = 4 * 3600.0  # seconds of history kept for late joiners and /api/spots
DEFAULT_MAX_COUNT = 200_000  # hard cap, so a spot storm cannot exhaust memory


# After id, spotter, freq and dx, in this order (`time` is always there; the others only when known).
_AFTER_DX = ("comment", "time", "band", "mode", "dxcc", "country", "cont", "cqz", "spotter_dxcc", "spotter_cont",
             "snr", "wpm")
DEFAULT_SOURCE = "cluster"


def json_time(when: datetime) -> str:
    """ISO 8601 UTC. Cluster spots carry the minute only, so zero seconds are left out: `2026-12-04T08:23Z`
    (JavaScript's Date and Python's datetime.fromisoformat read both forms)."""
    if when == _last_time[0]:  # spots come in time order: most share the previous one's minute
        return _last_time[1]
    head = f"{when.year:04d}-{when.month:02d}-{when.day:02d}T{when.hour:02d}:{when.minute:02d}"
    text = f"{head}Z" if when.second == 0 else f"{head}:{when.second:02d}Z"
    _last_time[:] = when, text
    return text


_last_time: list = [None, ""]  # (datetime, its text): the last one json_time formatted


def json_freq(khz: float) -> float:
    """kHz to the Hz, so float noise (14.0741 MHz is 14074.099999999999 kHz) does not reach the wire;
    whole kHz as an integer (`14025`, not `14025.0`)."""
    rounded = round(khz, 3)
    return int(rounded) if rounded.is_integer() else rounded


def spot_to_dict(spot: Spot) -> dict[str, object]:
    """The public JSON shape of a spot (WebSocket frames and /api/spots). Keys whose value is unknown
    (null), empty, false or the default (`source` "cluster") are left out: absent means unknown, or no.
    Every byte here is copied once per client, so the lean form is what carries 1,000 spots/s."""
    out: dict[str, object] = {"id": spot.id, "spotter": spot.spotter, "freq": json_freq(spot.freq), "dx": spot.dx}
    for key in _AFTER_DX:
        value = json_time(spot.time) if key == "time" else getattr(spot, key)
        if value is not None and value != "":
            out[key] = value
    if spot.skimmer:
        out["skimmer"] = True
    if spot.source != DEFAULT_SOURCE:
        out["source"] = spot.source
    if spot.verified:
        out["verified"] = True
    return out


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)  # one, not one per json.dumps call


def encode_spot(spot: Spot) -> bytes:
    return _ENCODER.encode(spot_to_dict(spot)).encode()


@dataclass(slots=True)
class RingEntry:
    seq: int
    spot: Spot
    json: bytes  # encoded once, shared by every client and every frame
    added_at: float  # monotonic seconds (trio clock) when it entered the ring
    line: bytes | None = None  # AK1A `DX de` line, encoded lazily for telnet clients
    packed: bytes | None = None  # msgpack map, encoded lazily for `hamsrv.msgpack` WebSocket clients


class SpotRing:
    """Append-only window of spots with contiguous sequence numbers starting at 1."""

    def __init__(self, max_count: int = DEFAULT_MAX_COUNT, max_age: float = DEFAULT_MAX_AGE):
        if max_count < 1 or max_age <= 0:
            raise ValueError("ring bounds must be positive")
        self.max_count = max_count
        self.max_age = max_age
        self._entries: list[RingEntry] = []
        self._head = 0  # index of the oldest live entry in _entries
        self.last_seq = 0
        self.floor = 0  # ids below it were given out in an earlier life of the server, now unknown

    def resumable(self, since: int, live: int) -> bool:
        """Whether a client resuming after `since` can be given what it missed: not when `since` lies
        beyond the last id sent (the ids started again) or below the floor (given out before a crash,
        whose last ids were never saved). 0 means from the start and is always fine."""
        return since == 0 or self.floor <= since <= live

    @property
    def first_seq(self) -> int:
        """Sequence number of the oldest spot still held (last_seq + 1 when empty)."""
        return self.last_seq - len(self) + 1

    def __len__(self) -> int:
        return len(self._entries) - self._head

    def append(self, spot: Spot, now: float) -> RingEntry:
        self.last_seq += 1
        spot.id = self.last_seq
        entry = RingEntry(self.last_seq, spot, encode_spot(spot), now)
        self._entries.append(entry)
        self.trim(now)
        return entry

    def mirror(self, seq: int, spot: Spot, encoded: bytes, now: float) -> RingEntry:
        """Append a spot another process already numbered and encoded (the shared-memory ring).
        A jump in numbering (this reader was lapped) drops the held window: clients then get a gap."""
        if seq <= self.last_seq:
            raise ValueError(f"spot {seq} is not newer than {self.last_seq}")
        if seq != self.last_seq + 1:
            self._entries, self._head = [], 0
        self.last_seq = spot.id = seq
        entry = RingEntry(seq, spot, encoded, now)
        self._entries.append(entry)
        self.trim(now)
        return entry

    def trim(self, now: float) -> None:
        entries, head = self._entries, self._head
        limit = now - self.max_age
        while len(entries) - head > self.max_count or (head < len(entries) and entries[head].added_at < limit):
            head += 1
        if head > 4096 and head * 2 > len(entries):  # compact now and then: O(1) amortised
            del entries[:head]
            head = 0
        self._head = head

    def after(self, seq: int, limit: int | None = None) -> list[RingEntry]:
        """Entries with sequence number > seq, oldest first (at most `limit`)."""
        start = max(seq - self.first_seq + 1, 0) + self._head
        stop = len(self._entries) if limit is None else min(start + limit, len(self._entries))
        return self._entries[start:stop]

    def newest_first(self) -> Iterator[RingEntry]:
        """Every held entry, newest first, lazily: searches stop as soon as they have enough."""
        entries = self._entries
        return (entries[i] for i in range(len(entries) - 1, self._head - 1, -1))
