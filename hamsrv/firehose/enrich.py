"""Spot enrichment (band, mode, DXCC entity, continent, zone) and duplicate suppression. No I/O:
the caller passes the time in, so tests drive it with plain numbers.

`make_prepare` is what the hub calls on every spot, so everything here is dict lookups and a few
string operations per spot.
"""

from __future__ import annotations

import functools
import re
from collections import OrderedDict
from collections.abc import Callable, Hashable

from hamsrv.cty import CtyTable
from hamsrv.firehose.modes import MODE_WORDS
from hamsrv.firehose.skimmer import Qualifier
from hamsrv.model import Spot, band_for_mhz

_WORD = re.compile(r"[A-Z0-9]+")

# A HEURISTIC for spots that name no mode: common dial frequencies of FT8/FT4 (kHz, the signals sit
# up to 3 kHz above), then coarse IARU/ARRL band-plan segments per band: (upper edge kHz, mode), the
# first upper edge above the frequency wins. DIGI marks data segments with no telling which mode.
DIALS = (
    (1840.0, "FT8"), (3573.0, "FT8"), (3575.5, "FT4"), (5357.0, "FT8"), (7047.5, "FT4"), (7074.0, "FT8"),
    (10136.0, "FT8"), (10140.0, "FT4"), (14074.0, "FT8"), (14080.0, "FT4"), (18100.0, "FT8"),
    (18104.0, "FT4"), (21074.0, "FT8"), (21140.0, "FT4"), (24915.0, "FT8"), (24919.0, "FT4"),
    (28074.0, "FT8"), (28180.0, "FT4"), (50313.0, "FT8"), (50318.0, "FT4"), (144174.0, "FT8"),
)
DIAL_WIDTH = 3.0
BAND_PLAN: dict[str, tuple[tuple[float, str], ...]] = {
    "160m": ((1838.0, "CW"), (1843.0, "DIGI"), (2000.0, "SSB")),
    "80m": ((3570.0, "CW"), (3600.0, "DIGI"), (4000.0, "SSB")),
    "60m": ((5354.0, "CW"), (5450.0, "SSB")),
    "40m": ((7040.0, "CW"), (7060.0, "DIGI"), (7300.0, "SSB")),
    "30m": ((10130.0, "CW"), (10150.0, "DIGI")),
    "20m": ((14070.0, "CW"), (14099.0, "DIGI"), (14101.0, "CW"), (14112.0, "DIGI"), (14350.0, "SSB")),
    "17m": ((18095.0, "CW"), (18111.0, "DIGI"), (18168.0, "SSB")),
    "15m": ((21070.0, "CW"), (21150.0, "DIGI"), (21450.0, "SSB")),
    "12m": ((24915.0, "CW"), (24931.0, "DIGI"), (24990.0, "SSB")),
    "10m": ((28070.0, "CW"), (28190.0, "DIGI"), (28225.0, "CW"), (29200.0, "SSB"), (29510.0, "SSB"),
            (29700.0, "FM")),
    "6m": ((50100.0, "CW"), (50300.0, "SSB"), (50400.0, "DIGI")),
    "2m": ((144150.0, "CW"), (144400.0, "SSB"), (144491.0, "CW"), (146000.0, "FM"), (148000.0, "FM")),
}


def mode_from_comment(comment: str) -> str | None:
    """The first mode word in a spot comment (`599 TKS(CW)` -> CW), or None."""
    for word in _WORD.findall(comment.upper()):
        mode = MODE_WORDS.get(word)
        if mode is not None:
            return mode
    return None


def mode_from_frequency(khz: float, band: str | None) -> str | None:
    """Band-plan guess (heuristic, see BAND_PLAN); None outside the planned bands."""
    for dial, mode in DIALS:
        if dial <= khz <= dial + DIAL_WIDTH:
            return mode
    for upper, mode in BAND_PLAN.get(band or "", ()):
        if khz < upper:
            return mode
    return None


class Enricher:
    """Fills the derived fields of a spot in place; fields a source already set (the RBN mode, a CC11
    zone) are kept."""

    def __init__(self, cty: CtyTable):
        self.cty = cty
        # the same spotters and DX calls come again and again: remember their entities (bounded)
        self._lookup = functools.lru_cache(maxsize=16384)(cty.lookup)

    def enrich(self, spot: Spot) -> Spot:
        if spot.band is None:
            spot.band = band_for_mhz(spot.freq / 1000.0)
        if spot.mode is None:
            spot.mode = mode_from_comment(spot.comment) or mode_from_frequency(spot.freq, spot.band)
        dx = self._lookup(spot.dx)
        if dx is not None:
            spot.dxcc = spot.dxcc if spot.dxcc is not None else dx.dxcc
            spot.country = spot.country or dx.name
            spot.cont = spot.cont or dx.cont
            spot.cqz = spot.cqz if spot.cqz is not None else dx.cqz
            spot.extra.setdefault("dx_ituz", str(dx.ituz))  # for call_itu filters
        spotter = self._lookup(spot.spotter)  # lookup drops `-#` / `-2` skimmer and SSID suffixes
        if spotter is not None:
            spot.spotter_dxcc = spot.spotter_dxcc if spot.spotter_dxcc is not None else spotter.dxcc
            spot.spotter_cont = spot.spotter_cont or spotter.cont
            spot.extra.setdefault("spotter_cqz", str(spotter.cqz))  # for by_zone filters and set/dxcq
            spot.extra.setdefault("spotter_ituz", str(spotter.ituz))  # for by_itu filters
        return spot


class _ExpiringKeys:
    """Keys with the time they were last stored, oldest first; forgets keys older than `ttl` and the
    oldest ones beyond `max_keys`, so memory stays bounded whatever the spot rate."""

    def __init__(self, ttl: float, max_keys: int):
        self.ttl = ttl
        self.max_keys = max_keys
        self._times: OrderedDict[Hashable, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._times)

    def seen(self, key: Hashable, now: float) -> bool:
        stored = self._times.get(key)
        return stored is not None and now - stored < self.ttl

    def store(self, key: Hashable, now: float) -> None:
        self._times[key] = now
        self._times.move_to_end(key)
        if len(self._times) > self.max_keys:
            self._times.popitem(last=False)

    def expire(self, now: float) -> None:
        times = self._times
        while times and (len(times) > self.max_keys or now - next(iter(times.values())) >= self.ttl):
            times.popitem(last=False)


class Deduper:
    """Drops spots a cluster network would drop, and collapses skimmer chatter.

    * DXSpider's rule: the same (DX call, spotter, frequency rounded to 1 kHz, spot minute, first 20
      characters of the comment) seen within `window` seconds (an hour) is a duplicate.
    * Skimmers: once a skimmer spot of a DX call on a frequency passed, further skimmer spots of that
      call within about `skimmer_khz` of it (any skimmer) are dropped for `skimmer_window` seconds
      (10 minutes). The window is not extended by dropped spots, so a station that keeps calling CQ
      reappears every 10 minutes with fresh data.
    `now` is any monotonic clock in seconds (trio.current_time, time.monotonic).
    """

    def __init__(self, *, window: float = 3600.0, skimmer_window: float = 600.0,
                 skimmer_khz: float = 0.5, max_keys: int = 200_000):
        self.skimmer_khz = skimmer_khz
        self._spots = _ExpiringKeys(window, max_keys)
        self._skimmed = _ExpiringKeys(skimmer_window, max_keys)

    def __len__(self) -> int:
        return len(self._spots) + len(self._skimmed)

    def is_duplicate(self, spot: Spot, now: float) -> bool:
        """True when `spot` repeats one seen recently; otherwise remember it and return False."""
        self._spots.expire(now)
        self._skimmed.expire(now)
        minute = int(spot.time.timestamp()) // 60
        # Only the key's hash is kept: a tuple of strings would keep ~400 bytes a spot alive for an hour
        # (measured with tracemalloc in a soak); two different spots sharing a 64-bit hash within the
        # window is a 1-in-10^8 chance even at the 200,000-key cap.
        key = hash((spot.dx, spot.spotter, round(spot.freq), minute, spot.comment[:20]))
        if self._spots.seen(key, now):
            return True
        if spot.skimmer:
            bucket = round(spot.freq / self.skimmer_khz)
            if any(self._skimmed.seen(hash((spot.dx, b)), now) for b in (bucket - 1, bucket, bucket + 1)):
                return True
            self._skimmed.store(hash((spot.dx, bucket)), now)
        self._spots.store(key, now)
        return False


def make_prepare(cty: CtyTable, clock: Callable[[], float]) -> Callable[[Spot], Spot | None]:
    """The hub's per-spot step: hold skimmer spots until a second skimmer confirms them (skimmer.py),
    drop duplicates (checked before enriching, so they cost no lookups), then enrich."""
    enricher = Enricher(cty)
    deduper = Deduper()
    qualifier = Qualifier()

    def prepare(spot: Spot) -> Spot | None:
        now = clock()
        qualified = qualifier.offer(spot, now)
        if qualified is None or deduper.is_duplicate(qualified, now):
            return None
        return enricher.enrich(qualified)

    return prepare
