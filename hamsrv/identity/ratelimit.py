"""Token buckets keyed by IP address, user or callsign, sans-I/O (the caller passes the clock).

Memory is bounded: past `max_keys` the bucket that was touched longest ago is forgotten (a full
bucket again, which only errs towards letting a client in). Per process: with `--workers N` each
worker keeps its own buckets.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    per_second: float  # refill
    burst: float  # bucket size

    @classmethod
    def per_minute(cls, count: float, burst: float | None = None) -> Rate:
        return cls(count / 60.0, burst if burst is not None else count)


class Buckets:
    def __init__(self, rate: Rate, max_keys: int = 100_000):
        self.rate, self.max_keys = rate, max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str, now: float, cost: float = 1.0) -> float:
        """Spend `cost` tokens of `key`'s bucket: 0.0 when allowed, else the seconds to wait
        (nothing is spent then)."""
        tokens, at = self._buckets.pop(key, (self.rate.burst, now))
        tokens = min(self.rate.burst, tokens + max(0.0, now - at) * self.rate.per_second)
        wait = 0.0
        if tokens >= cost:
            tokens -= cost
        else:
            wait = (cost - tokens) / self.rate.per_second if self.rate.per_second > 0 else math.inf
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after(wait: float) -> str:
    """A Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(min(wait, 86400.0))))
