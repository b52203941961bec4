"""The bench's verdicts: percentiles, target checks, ratios and the markdown table."""

from __future__ import annotations

from typing import Any

from bench.report import TARGETS, cpu_ratios, markdown, percentile, prototype_verdicts, target_verdicts


def run(server: str, clients: int = 1000, rate: float = 100, **changes: Any) -> dict[str, Any]:
    values = {
        "server": server, "clients": clients, "rate": rate, "deliveries_per_s": clients * rate,
        "delivered": clients * rate * 5, "delivered_fraction": 1.0, "p50_ms": 20.0, "p99_ms": 60.0, "server_cpu_percent": 12.0,
        "server_cpu_s_per_million": 0.8, "server_peak_rss_mb": 60.0, "generator_cpu_percent": 30.0,
        "generator_saturated": False, "failed_connects": 0, "disconnected": 0,
        "publisher_max_lag_ms": 3.0,
    }
    values.update(changes)
    return values


def test_percentile_picks_the_bin_that_reaches_the_fraction() -> None:
    histogram = {1: 50, 2: 49, 300: 1}
    assert percentile(histogram, 0.5) == 1
    assert percentile(histogram, 0.99) == 2
    assert percentile(histogram, 1.0) == 300
    assert percentile({}, 0.99) is None


def test_targets_report_each_missed_bar() -> None:
    first = TARGETS[0]
    assert first.check(run("hamsrv")) == ("met", [])
    status, reasons = first.check(run("hamsrv", delivered_fraction=0.99, p99_ms=101.0,
                                      server_cpu_s_per_million=1.5))
    assert status == "missed" and len(reasons) == 3
    assert first.check(None) == ("not run", [])
    assert first.check({"server": "hamsrv", "error": "did not start\nlog"}) == ("not run", ["did not start"])


def test_ratios_and_table() -> None:
    runs = [run("hamsrv"), run("nchan", server_cpu_s_per_million=4.0),
            {"server": "node", "clients": 1000, "rate": 100, "error": "node is not installed"}]
    assert cpu_ratios(runs) == [{"clients": 1000, "rate": 100, "peer": "nchan", "ratio": 0.2}]
    report = {"matrix": "quick", "started": "now", "machine": "test box", "server_cpus": "0",
              "generator_cpus": "1", "warmup_s": 2.0, "window_s": 5.0, "drain_s": 2.0,
              "measured_processes": {"hamsrv": "the hamsrv process"}, "runs": runs,
              "targets": target_verdicts(runs), "ratios": cpu_ratios(runs)}
    text = markdown(report)
    assert "| hamsrv | 1000 | 100 | 100,000 | 100.00% | 20 | 60 | 12% | 0.80 |" in text
    assert "not run: node is not installed" in text
    assert "| 1,000 x 100 | >= 99.9%, p99 <= 100 ms, <= 1.0 CPU-s/M | met |" in text
    assert "| 5,000 x 1,000 |" in text and "| not run |" in text
    assert "| 1,000 x 100 | nchan | 0.20 |" in text


def test_against_the_prototype_each_bar_and_saturation() -> None:
    """Issue 12: delivered >= 99.9%, p99 <= 1.2x and CPU per delivery <= 1.1x the prototype's, same point."""
    runs = [run("hamsrv", p99_ms=66.0, server_cpu_s_per_million=0.88), run("prototype"),
            run("hamsrv", 5000, 1000, delivered_fraction=0.99, p99_ms=73.0, server_cpu_s_per_million=0.9),
            run("prototype", 5000, 1000),
            run("hamsrv", 5000, 100), run("prototype", 5000, 100, generator_saturated=True),
            run("hamsrv", 200, 1000, delivered_fraction=0.9), run("prototype", 200, 1000, delivered_fraction=0.99)]
    met, missed, saturated, starved = prototype_verdicts(runs)
    assert starved["status"].startswith("not judged (the prototype also lost spots")
    assert met["status"] == "met" and round(met["p99_ratio"], 2) == 1.1 and round(met["cpu_ratio"], 2) == 1.1
    assert missed["status"] == "missed" and missed["misses"] == ["delivered 99.00%", "p99 1.22x", "CPU 1.12x"]
    assert saturated["status"] == "not judged (generator saturated)"
    report = {"matrix": "custom", "started": "now", "machine": "test box", "server_cpus": "0",
              "generator_cpus": "1", "warmup_s": 2.0, "window_s": 5.0, "drain_s": 2.0,
              "measured_processes": {}, "runs": runs, "targets": [], "ratios": [],
              "prototype_verdicts": [met, missed, saturated], "load": ["1.00 0.50 0.20", "1.50 0.70 0.30"]}
    text = markdown(report)
    assert "| 5,000 x 1,000 | 99.00% | 100.00% | 1.22 | 1.12 | missed (delivered 99.00%, p99 1.22x, CPU 1.12x) |" in text
    assert "before the runs: 1.00 0.50 0.20; after: 1.50 0.70 0.30" in text
