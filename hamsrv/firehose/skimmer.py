"""Skimmer (RBN) spot qualification, DXSpider's way (perl/RBN.pm), sans-I/O.

One skimmer hearing a call proves little (busted decodes, mis-calibrated receivers), so a skimmer spot
goes out only once `minqual` different skimmers have heard the same call on about the same frequency
(`our $minqual = 2;`). A candidate waits at most `$limbotime = 5*60` seconds for its second skimmer. The
spot that goes out carries DXSpider's curated comment `sprintf "%-3s %2ddB $quality"`, e.g.
`CW  23dB Q:2` (mode, the spotter's SNR, how many skimmers heard it). Later skimmer spots of the same
call and frequency are collapsed by the hub's duplicate check (enrich.Deduper).

DXSpider also waits `$dwelltime = 10` seconds to gather more skimmers before sending; this node sends
as soon as the second skimmer arrives, so Q is the count at that moment (usually 2).
"""

from __future__ import annotations

from collections import OrderedDict

from hamsrv.firehose.modes import is_skimmer
from hamsrv.model import Spot

MIN_QUALITY = 2  # RBN.pm `our $minqual = 2;`
LIMBO = 5 * 60.0  # RBN.pm `our $limbotime = 5*60;`
MAX_CANDIDATES = 50_000  # bounded whatever the skimmers send


class Qualifier:
    """Holds first skimmer spots until a second skimmer confirms them (see the module docstring)."""

    def __init__(self, min_quality: int = MIN_QUALITY, limbo: float = LIMBO,
                 max_candidates: int = MAX_CANDIDATES):
        self.min_quality, self.limbo, self.max_candidates = min_quality, limbo, max_candidates
        # (dx, frequency in 100 Hz) -> (first seen, skimmers heard)
        self._candidates: OrderedDict[tuple[str, int], tuple[float, set[str]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._candidates)

    def offer(self, spot: Spot, now: float) -> Spot | None:
        """A non-skimmer spot passes unchanged; a skimmer spot passes (with `Q:n`) once enough
        skimmers heard it, else None (held). `now` is a monotonic clock in seconds."""
        if not is_skimmer(spot):
            return spot
        self._expire(now)
        tenths = round(spot.freq * 10)
        key = next(((spot.dx, t) for t in (tenths, tenths - 1, tenths + 1, tenths - 2, tenths + 2)
                    if (spot.dx, t) in self._candidates), (spot.dx, tenths))
        first, skimmers = self._candidates.get(key, (now, set()))
        skimmers.add(skimmer_name(spot.spotter))
        if len(skimmers) < self.min_quality:
            self._candidates[key] = (first, skimmers)
            if len(self._candidates) > self.max_candidates:
                self._candidates.popitem(last=False)
            return None
        self._candidates.pop(key, None)
        spot.extra["skimmer_quality"] = str(len(skimmers))
        mode = spot.mode or "CW"
        snr = f"{spot.snr:2d}" if spot.snr is not None else " ?"
        spot.comment = f"{mode:<3} {snr}dB Q:{min(len(skimmers), 9)}"  # RBN.pm: `$quality = 9 if $quality > 9;`
        return spot

    def _expire(self, now: float) -> None:
        while self._candidates:
            key, (first, _) = next(iter(self._candidates.items()))
            if now - first < self.limbo:
                return
            del self._candidates[key]  # RBN.pm: `time in Limbo exceeded DUMPED`


def skimmer_name(spotter: str) -> str:
    """`DK9IP-#` -> `DK9IP` (RBN.pm counts distinct `$r->[ROrigin]`)."""
    return spotter.removesuffix("-#")
