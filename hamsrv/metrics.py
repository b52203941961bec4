"""A tiny in-process metrics registry rendered in the Prometheus text format (no dependency).

Counters and gauges are plain attributes bumped on hot paths, so recording costs one add.
"""

from __future__ import annotations

from collections.abc import Callable


class Counter:
    __slots__ = ("name", "help", "value")

    def __init__(self, name: str, help: str):
        self.name, self.help, self.value = name, help, 0.0

    def inc(self, n: float = 1) -> None:
        self.value += n


class Gauge:
    """A value read at scrape time from a callable, so nobody has to keep it up to date."""

    __slots__ = ("name", "help", "read")

    def __init__(self, name: str, help: str, read: Callable[[], float]):
        self.name, self.help, self.read = name, help, read


class Registry:
    def __init__(self) -> None:
        self._metrics: dict[str, Counter | Gauge] = {}
        self._labelled: dict[str, tuple[str, str, Callable[[], dict[str, float]]]] = {}

    def counter(self, name: str, help: str) -> Counter:
        existing = self._metrics.get(name)
        if isinstance(existing, Counter):
            return existing
        c = self._metrics[name] = Counter(name, help)
        return c

    def gauge(self, name: str, help: str, read: Callable[[], float]) -> Gauge:
        g = self._metrics[name] = Gauge(name, help, read)
        return g

    def labelled_gauge(self, name: str, help: str, label: str,
                       read: Callable[[], dict[str, float]]) -> None:
        """A gauge family with one label, e.g. per-link health: read() -> {label value: number}."""
        self._labelled[name] = (help, label, read)

    def render(self) -> str:
        out: list[str] = []
        for m in self._metrics.values():
            kind = "counter" if isinstance(m, Counter) else "gauge"
            value = m.value if isinstance(m, Counter) else m.read()
            out += [f"# HELP {m.name} {m.help}", f"# TYPE {m.name} {kind}", f"{m.name} {value:g}"]
        for name, (help, label, read) in self._labelled.items():
            out += [f"# HELP {name} {help}", f"# TYPE {name} gauge"]
            for key, value in sorted(read().items()):
                escaped = key.replace("\\", "\\\\").replace('"', '\\"')
                out.append(f'{name}{{{label}="{escaped}"}} {value:g}')
        return "\n".join(out) + "\n"
