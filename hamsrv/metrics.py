"""A tiny in-process metrics registry rendered in the Prometheus text format (no dependency).

Counters and gauges are plain attributes bumped on hot paths, so recording costs one add.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable


class Counter:
    __slots__ = ("name", "help", "value")

    def __init__(self, name: str, help: str):
        self.name, self.help, self.value = name, help, 0.0

    def inc(self, n: float = 1) -> None:
        self.value += n


class Gauge:
    """A value read at scrape time from a callable, so nobody has to keep it up to date (`kind`
    "counter" for a count another object keeps, like the database pool's waits)."""

    __slots__ = ("name", "help", "read", "kind")

    def __init__(self, name: str, help: str, read: Callable[[], float], kind: str = "gauge"):
        self.name, self.help, self.read, self.kind = name, help, read, kind


Labels = tuple[tuple[str, str], ...]


def _num(value: float) -> str:
    """Exact text for a sample (`:g` keeps 6 digits, too few for byte counts and busy counters)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _label_text(labels: Labels) -> str:
    if not labels:
        return ""
    parts = [f'{k}="' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
             for k, v in labels]
    return "{" + ",".join(parts) + "}"


class LabelledCounter:
    """A counter family: one value per label set (e.g. requests by route and status)."""

    def __init__(self, name: str, help: str):
        self.name, self.help = name, help
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels, n: float = 1) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + n

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        out += [f"{self.name}{_label_text(k)} {_num(v)}" for k, v in sorted(self.values.items())]
        return out


# Request latency buckets in seconds (Prometheus client's defaults, up to 10 s).
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


class Histogram:
    """A histogram family with labels: cumulative buckets, sum and count per label set."""

    def __init__(self, name: str, help: str, buckets: tuple[float, ...] = DEFAULT_BUCKETS):
        self.name, self.help, self.buckets = name, help, buckets
        self.series: dict[Labels, list[float]] = {}  # bucket counts..., +Inf count, sum

    def observe(self, labels: Labels, value: float) -> None:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = [0.0] * (len(self.buckets) + 2)
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                series[i] += 1
        series[-2] += 1
        series[-1] += value

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for labels, series in sorted(self.series.items()):
            for bound, count in zip((*self.buckets, "+Inf"), series[:-1], strict=True):
                le = bound if isinstance(bound, str) else f"{bound:g}"
                out.append(f"{self.name}_bucket{_label_text((*labels, ('le', le)))} {_num(count)}")
            out.append(f"{self.name}_sum{_label_text(labels)} {_num(series[-1])}")
            out.append(f"{self.name}_count{_label_text(labels)} {_num(series[-2])}")
        return out


def process_figures() -> dict[str, float]:
    """CPU seconds, resident memory and open files of this process (the names prometheus_client uses)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    figures = {"process_cpu_seconds_total": usage.ru_utime + usage.ru_stime}
    try:
        with open("/proc/self/statm") as statm:
            figures["process_resident_memory_bytes"] = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        figures["process_open_fds"] = len(os.listdir("/proc/self/fd"))
    except OSError:  # not Linux: the peak resident size is what getrusage knows
        figures["process_resident_memory_bytes"] = usage.ru_maxrss * 1024
    figures["process_max_fds"] = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return figures


_PROCESS_HELP = {"process_cpu_seconds_total": ("counter", "User and system CPU time spent, seconds"),
                 "process_resident_memory_bytes": ("gauge", "Resident memory size, bytes"),
                 "process_open_fds": ("gauge", "Open file descriptors"),
                 "process_max_fds": ("gauge", "Most file descriptors this process may open")}


class Registry:
    def __init__(self) -> None:
        self._metrics: dict[str, Counter | Gauge] = {}
        self._labelled: dict[str, tuple[str, str, Callable[[], dict[str, float]]]] = {}
        self._families: dict[str, LabelledCounter | Histogram] = {}

    def labelled_counter(self, name: str, help: str) -> LabelledCounter:
        existing = self._families.get(name)
        if isinstance(existing, LabelledCounter):
            return existing
        family = self._families[name] = LabelledCounter(name, help)
        return family

    def histogram(self, name: str, help: str) -> Histogram:
        existing = self._families.get(name)
        if isinstance(existing, Histogram):
            return existing
        family = self._families[name] = Histogram(name, help)
        return family

    def counter(self, name: str, help: str) -> Counter:
        existing = self._metrics.get(name)
        if isinstance(existing, Counter):
            return existing
        c = self._metrics[name] = Counter(name, help)
        return c

    def gauge(self, name: str, help: str, read: Callable[[], float], kind: str = "gauge") -> Gauge:
        g = self._metrics[name] = Gauge(name, help, read, kind)
        return g

    def labelled_gauge(self, name: str, help: str, label: str,
                       read: Callable[[], dict[str, float]]) -> None:
        """A gauge family with one label, e.g. per-link health: read() -> {label value: number}."""
        self._labelled[name] = (help, label, read)

    def render(self) -> str:
        out: list[str] = []
        for m in self._metrics.values():
            kind = "counter" if isinstance(m, Counter) else m.kind
            value = m.value if isinstance(m, Counter) else m.read()
            out += [f"# HELP {m.name} {m.help}", f"# TYPE {m.name} {kind}", f"{m.name} {value:g}"]
        for name, (help, label, read) in self._labelled.items():
            out += [f"# HELP {name} {help}", f"# TYPE {name} gauge"]
            for key, value in sorted(read().items()):
                escaped = key.replace("\\", "\\\\").replace('"', '\\"')
                out.append(f'{name}{{{label}="{escaped}"}} {value:g}')
        for family in self._families.values():
            out += family.render()
        for name, value in process_figures().items():
            kind, help = _PROCESS_HELP[name]
            out += [f"# HELP {name} {help}", f"# TYPE {name} {kind}", f"{name} {_num(value)}"]
        return "\n".join(out) + "\n"
