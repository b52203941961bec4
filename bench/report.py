"""Turn firehose bench runs into verdicts, ratios and files (JSON, markdown, PNG). No I/O but writing.

A run is a plain dict (see bench.firehose.measure_run); a failed run has an "error" key instead of
numbers. Absolute CPU times drift on a shared machine, so every point also reports hamsrv's CPU per
million deliveries as a ratio to each peer measured in the same invocation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Run = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """Issue 4's bar for hamsrv at one (clients, spots/s) point."""

    clients: int
    rate: int
    min_delivered: float
    max_p99_ms: float
    max_cpu_per_million: float | None = None

    def check(self, run: Run | None) -> tuple[str, list[str]]:
        """("met" | "missed" | "not run", reasons for a miss)."""
        if run is None or "error" in run:
            return "not run", [run["error"].splitlines()[0]] if run else []
        misses = []
        if run["delivered_fraction"] < self.min_delivered:
            misses.append(f"delivered {run['delivered_fraction']:.4%} < {self.min_delivered:.1%}")
        if run["p99_ms"] is None or run["p99_ms"] > self.max_p99_ms:
            misses.append(f"p99 {run['p99_ms']} ms > {self.max_p99_ms:g} ms")
        cpu = run["server_cpu_s_per_million"]
        if self.max_cpu_per_million is not None and (cpu is None or cpu > self.max_cpu_per_million):
            misses.append(f"{cpu:.2f} CPU-s/M > {self.max_cpu_per_million:g}" if cpu is not None
                          else "no CPU figure")
        return ("missed" if misses else "met"), misses


TARGETS = (
    Target(1000, 100, 0.999, 100, 1.0),
    Target(1000, 1000, 0.999, 150),
    Target(5000, 100, 0.999, 150),
    Target(5000, 1000, 0.999, 100, 0.25),
)


def percentile(histogram: dict[int, int], fraction: float) -> float | None:
    """The smallest bin (ms) at or below which `fraction` of the samples lie."""
    total = sum(histogram.values())
    if not total:
        return None
    needed = fraction * total
    seen = 0
    for delay in sorted(histogram):
        seen += histogram[delay]
        if seen >= needed:
            return float(delay)
    return float(max(histogram))


def find_run(runs: list[Run], server: str, clients: int, rate: float) -> Run | None:
    for run in runs:
        if run["server"] == server and run["clients"] == clients and run["rate"] == rate:
            return run
    return None


def target_verdicts(runs: list[Run]) -> list[dict[str, Any]]:
    verdicts = []
    for target in TARGETS:
        status, reasons = target.check(find_run(runs, "hamsrv", target.clients, target.rate))
        verdicts.append({"clients": target.clients, "rate": target.rate, "status": status,
                         "reasons": reasons, "min_delivered": target.min_delivered,
                         "max_p99_ms": target.max_p99_ms,
                         "max_cpu_per_million": target.max_cpu_per_million})
    return verdicts


def cpu_ratios(runs: list[Run]) -> list[dict[str, Any]]:
    """hamsrv CPU-s per million / peer CPU-s per million, per point and peer (below 1: hamsrv is cheaper)."""
    ratios = []
    for ours in runs:
        if ours["server"] != "hamsrv" or ours.get("server_cpu_s_per_million") is None:
            continue
        for peer in runs:
            if (peer["server"] != "hamsrv" and peer["clients"] == ours["clients"]
                    and peer["rate"] == ours["rate"] and peer.get("server_cpu_s_per_million")):
                ratios.append({"clients": ours["clients"], "rate": ours["rate"],
                               "peer": peer["server"],
                               "ratio": ours["server_cpu_s_per_million"]
                               / peer["server_cpu_s_per_million"]})
    return ratios


# Issue 12's bar against the bare trio prototype at the same point in the same run.
PROTOTYPE_MIN_DELIVERED, PROTOTYPE_MAX_P99_RATIO, PROTOTYPE_MAX_CPU_RATIO = 0.999, 1.2, 1.1


def prototype_verdicts(runs: list[Run]) -> list[dict[str, Any]]:
    """Per point both servers completed: hamsrv's delivered share, p99 and CPU per delivery against the
    prototype's. A point is not judged when either run's generator was saturated, or when the prototype
    itself lost spots (on a shared machine the generator may be starved without using its whole CPU)."""
    verdicts = []
    for ours in runs:
        theirs = find_run(runs, "prototype", ours["clients"], ours["rate"])
        if ours["server"] != "hamsrv" or theirs is None or "error" in ours or "error" in theirs:
            continue
        p99 = ours["p99_ms"] / theirs["p99_ms"] if ours["p99_ms"] and theirs["p99_ms"] else None
        cpu = (ours["server_cpu_s_per_million"] / theirs["server_cpu_s_per_million"]
               if ours["server_cpu_s_per_million"] and theirs["server_cpu_s_per_million"] else None)
        misses = []
        if ours["delivered_fraction"] < PROTOTYPE_MIN_DELIVERED:
            misses.append(f"delivered {ours['delivered_fraction']:.2%}")
        if p99 is None or p99 > PROTOTYPE_MAX_P99_RATIO:
            misses.append(f"p99 {_fmt(p99, '.2f')}x")
        if cpu is None or cpu > PROTOTYPE_MAX_CPU_RATIO:
            misses.append(f"CPU {_fmt(cpu, '.2f')}x")
        if ours["generator_saturated"] or theirs["generator_saturated"]:
            status = "not judged (generator saturated)"
        elif theirs["delivered_fraction"] < PROTOTYPE_MIN_DELIVERED:  # the floor itself could not keep up
            status = "not judged (the prototype also lost spots: generator starved or machine busy)"
        else:
            status = "missed" if misses else "met"
        verdicts.append({"clients": ours["clients"], "rate": ours["rate"], "p99_ratio": p99, "cpu_ratio": cpu,
                         "delivered": ours["delivered_fraction"],
                         "prototype_delivered": theirs["delivered_fraction"], "status": status,
                         "misses": misses})
    return verdicts


def _fmt(value: Any, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def markdown(report: dict[str, Any]) -> str:
    runs: list[Run] = report["runs"]
    lines = [
        f"# Firehose bench: {report['matrix']} ({report['started']})", "",
        f"{report['machine']}. Server pinned to CPU {report['server_cpus']}, load generator to CPU "
        f"{report['generator_cpus']}. Each run: {report['warmup_s']:g} s warm-up, "
        f"{report['window_s']:g} s measured window, {report['drain_s']:g} s for late spots."
        + (" Clients offered permessage-deflate as browsers do (servers that decline it send plain frames)."
           if report.get("deflate") else ""), "",
        "| server | clients | spots/s | deliveries/s | delivered | p50 ms | p99 ms | server CPU | "
        "CPU-s / M deliveries | peak RSS MiB | generator CPU | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in runs:
        if "error" in run:
            lines.append(f"| {run['server']} | {run['clients']} | {run['rate']:g} | "
                         f"| | | | | | | | not run: {run['error'].splitlines()[0]} |")
            continue
        notes = []
        if run["generator_saturated"]:
            notes.append("generator saturated")
        if run["failed_connects"]:
            notes.append(f"{run['failed_connects']} clients failed to connect")
        if run["disconnected"]:
            notes.append(f"{run['disconnected']} clients dropped")
        if not run["delivered"]:
            notes.append("no measured spot arrived before the run ended: backlog > window + drain")
        if run["publisher_max_lag_ms"] > 100:
            notes.append(f"publisher lagged {run['publisher_max_lag_ms']:.0f} ms")
        lines.append(
            f"| {run['server']} | {run['clients']} | {run['rate']:g} | "
            f"{run['deliveries_per_s']:,.0f} | {run['delivered_fraction']:.2%} | "
            f"{_fmt(run['p50_ms'], '.0f')} | {_fmt(run['p99_ms'], '.0f')} | "
            f"{run['server_cpu_percent']:.0f}% | {_fmt(run['server_cpu_s_per_million'], '.2f')} | "
            f"{run['server_peak_rss_mb']:.0f} | {run['generator_cpu_percent']:.0f}% | "
            f"{'; '.join(notes)} |")
    lines += ["", "## hamsrv targets (issue 4)", "",
              "| clients x spots/s | bar | result |", "|---|---|---|"]
    for verdict in report["targets"]:
        bar = f">= {verdict['min_delivered']:.1%}, p99 <= {verdict['max_p99_ms']:g} ms"
        if verdict["max_cpu_per_million"] is not None:
            bar += f", <= {verdict['max_cpu_per_million']} CPU-s/M"
        result = verdict["status"] + (f" ({'; '.join(verdict['reasons'])})" if verdict["reasons"] else "")
        lines.append(f"| {verdict['clients']:,} x {verdict['rate']:,} | {bar} | {result} |")
    lines += ["", "## CPU per million deliveries, hamsrv / peer (same run; below 1 = hamsrv cheaper)", ""]
    if report["ratios"]:
        lines += ["| clients x spots/s | peer | ratio |", "|---|---|---:|"]
        lines += [f"| {r['clients']:,} x {r['rate']:,g} | {r['peer']} | {r['ratio']:.2f} |"
                  for r in report["ratios"]]
    else:
        lines.append("No ratio: hamsrv and at least one peer must both complete a point.")
    if report.get("prototype_verdicts"):
        lines += ["", f"## hamsrv against the bare trio prototype (issue 12: >= {PROTOTYPE_MIN_DELIVERED:.1%} "
                      f"delivered, p99 <= {PROTOTYPE_MAX_P99_RATIO}x, CPU per delivery <= {PROTOTYPE_MAX_CPU_RATIO}x)",
                  "", "| clients x spots/s | hamsrv delivered | prototype delivered | p99 ratio | CPU ratio | result |",
                  "|---|---:|---:|---:|---:|---|"]
        lines += [f"| {v['clients']:,} x {v['rate']:,g} | {v['delivered']:.2%} | {v['prototype_delivered']:.2%} | "
                  f"{_fmt(v['p99_ratio'], '.2f')} | {_fmt(v['cpu_ratio'], '.2f')} | {v['status']}"
                  + (f" ({', '.join(v['misses'])})" if v["misses"] else "") + " |"
                  for v in report["prototype_verdicts"]]
    if report.get("load"):
        lines += ["", f"Load average (1, 5, 15 min) before the runs: {report['load'][0]}; after: {report['load'][1]}."]
    lines += ["", "Measured processes: " + "; ".join(
        f"{name}: {what}" for name, what in report["measured_processes"].items()) + ".", ""]
    return "\n".join(lines)


def write_chart(runs: list[Run], path: Path) -> None:
    """Deliveries/s and p99 against clients, one line per server, one column per spot rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogFormatter

    class PlainLogFormatter(LogFormatter):
        """Log-axis labels as plain numbers (60, not 6x10^1)."""

        def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
            return f"{x:g}"

    done = [run for run in runs if "error" not in run]
    rates = sorted({run["rate"] for run in done}) or [0]
    clients = sorted({run["clients"] for run in done})
    figure, axes = plt.subplots(2, len(rates), figsize=(5.5 * len(rates), 7), squeeze=False)
    for column, rate in enumerate(rates):
        top, bottom = axes[0][column], axes[1][column]
        for server in sorted({run["server"] for run in done}):
            points = sorted(((run["clients"], run) for run in done
                             if run["server"] == server and run["rate"] == rate), key=lambda p: p[0])
            if points:
                xs = [c for c, _ in points]
                top.plot(xs, [r["deliveries_per_s"] for _, r in points], "o-", label=server)
                bottom.plot(xs, [r["p99_ms"] for _, r in points], "o-", label=server)
        top.set_title(f"{rate:g} spots/s")
        top.set_ylabel("deliveries/s")
        top.set_ylim(bottom=0)
        bottom.set_ylabel("p99 publish-to-receipt (ms, log)")
        bottom.set_yscale("log")
        bottom.yaxis.set_major_formatter(PlainLogFormatter(labelOnlyBase=False))
        bottom.yaxis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False,
                                                           minor_thresholds=(2, 0.5)))
        for axis in (top, bottom):
            axis.set_xlabel("clients")
            axis.set_xticks(clients)
            axis.grid(True, alpha=0.3)
            if axis.get_lines():
                axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_reports(report: dict[str, Any], folder: Path, name: str) -> list[Path]:
    """Write NAME.json, NAME.md and NAME.png into `folder`; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    report["targets"] = target_verdicts(report["runs"])
    report["ratios"] = cpu_ratios(report["runs"])
    report["prototype_verdicts"] = prototype_verdicts(report["runs"])
    paths = [folder / f"{name}.json", folder / f"{name}.md", folder / f"{name}.png"]
    paths[0].write_text(json.dumps(report, indent=1) + "\n")
    paths[1].write_text(markdown(report))
    write_chart(report["runs"], paths[2])
    return paths
