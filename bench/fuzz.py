"""Coverage-guided fuzzing (atheris) of every parser of outside input, for a fixed time budget each.

    pip install atheris
    python -m bench.fuzz [--seconds 60] [--target adi,adx,cluster,session,ws,query,spot_json,qso_json]

Each target runs in its own process (atheris owns the process) for `--seconds`; a crash, an exception
other than the parser's documented input error, or memory above `--rss-mb` stops it with the input
that did it saved in bench/results/fuzz/. Writes bench/results/fuzz.md (target, runs, result).
CI runs the same parsers under hypothesis (tests/); this is the long budget.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = ("adi", "adx", "cluster", "session", "ws", "query", "spot_json", "qso_json")


def one_input(target: str):  # type: ignore[no-untyped-def]
    """The function atheris calls with each input, for `target`."""
    from hamsrv.errors import InputError

    if target in ("adi", "adx"):
        from hamsrv.ingest.adif import AdiParser, AdxParser

        def run(data: bytes) -> None:
            parser = AdiParser() if target == "adi" else AdxParser()
            for i in range(0, len(data), 97):  # cut anywhere, as a network does
                parser.feed(data[i:i + 97])
                list(parser.events())
            parser.close()
            list(parser.events())
        return run
    if target == "cluster":
        from hamsrv.firehose.cluster import parse_line
        return lambda data: [parse_line(line) for line in data.split(b"\n")]
    if target == "session":
        from hamsrv.firehose.session import ClusterSession

        def session(data: bytes) -> None:
            s = ClusterSession("GB7HAM")
            s.start()
            for i in range(0, len(data), 13):
                s.receive_data(data[i:i + 13])
        return session
    if target == "ws":
        from hamsrv.firehose import ws

        def frames(data: bytes) -> None:
            reader = ws.FrameReader()
            reader.receive_data(data)
            while reader.next_event() is not None:
                pass
            ws.accept_upgrade(data)
        return frames

    def guarded(parse):  # type: ignore[no-untyped-def]
        def run(data: bytes) -> None:
            with contextlib.suppress(InputError):
                parse(data)
        return run

    if target == "query":
        from hamsrv.firehose.filters import parse_query, parse_subscribe

        def query(data: bytes) -> None:
            text = data.decode("utf-8", "replace")
            with contextlib.suppress(InputError):
                parse_query(text)
            with contextlib.suppress(InputError):
                parse_subscribe(text)
        return query
    if target == "spot_json":
        from hamsrv.firehose.spot_input import spot_from_json
        return guarded(lambda data: spot_from_json(_json_object(data), "W1AW"))
    if target == "qso_json":
        from hamsrv.http.qso_input import row_from_json
        return guarded(lambda data: row_from_json(_json_object(data)))
    raise SystemExit(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")


def _json_object(data: bytes) -> dict[str, object]:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def fuzz_one(target: str, seconds: float, rss_mb: int) -> None:
    """Run inside the child process: atheris takes over until the time budget is spent."""
    import atheris

    with atheris.instrument_imports():
        run = one_input(target)
    out = RESULTS / "fuzz"
    out.mkdir(parents=True, exist_ok=True)
    atheris.Setup([sys.argv[0], f"-max_total_time={int(seconds)}", f"-rss_limit_mb={rss_mb}",
                   f"-artifact_prefix={out}/{target}-", "-print_final_stats=1"], run)
    atheris.Fuzz()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--target", default=",".join(TARGETS))
    parser.add_argument("--rss-mb", type=int, default=512)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        fuzz_one(args.child, args.seconds, args.rss_mb)
        return
    rows = ["| target | seconds | runs | result |", "|---|---|---|---|"]
    failed = False
    for target in args.target.split(","):
        started = time.monotonic()
        child = subprocess.run([sys.executable, "-m", "bench.fuzz", "--child", target, "--seconds",
                                str(args.seconds), "--rss-mb", str(args.rss_mb)],
                               capture_output=True, text=True)
        runs = next((line.split(":")[-1].strip() for line in child.stderr.splitlines()
                     if "stat::number_of_executed_units" in line), "?")
        ok = child.returncode == 0
        failed |= not ok
        result = "no failure" if ok else "FAILED: " + (child.stderr.strip().splitlines() or ["?"])[-1][:120]
        rows.append(f"| {target} | {time.monotonic() - started:.0f} | {runs} | {result} |")
        print(rows[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fuzz.md").write_text("\n".join(rows) + "\n")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
