"""hamsrv's MINIMUF against DXSpider's Perl MINIMUF on ten real paths (the issue's comparison table).

    python -m bench.propagation [--flux 140] [--date 2026-12-03]

Writes bench/results/propagation.{json,md}: for each path the MUF at 00, 06, 12 and 18 UTC from both,
and the largest difference over the 24 hours.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import date
from pathlib import Path

from bench.peers.minimuf import PerlMinimuf
from hamsrv.propagation import EARTH_RADIUS_KM, locator_to_latlon, minimuf, path_angle

RESULTS = Path(__file__).resolve().parent / "results"
PATHS = [  # (from, to, what the path is)
    ("FN31", "JO62", "Connecticut - Berlin"), ("FN20", "IO91", "New York - London"),
    ("JO62", "PM95", "Berlin - Tokyo"), ("IO91", "QF56", "London - Sydney"),
    ("FM18", "GG66", "Washington - Sao Paulo"), ("JN45", "KP20", "Milan - Helsinki"),
    ("CM87", "BL11", "San Francisco - Honolulu"), ("EM12", "KG33", "Dallas - Johannesburg"),
    ("PM95", "QF56", "Tokyo - Sydney"), ("KN04", "FN42", "Ankara - Boston"),
]


def compare(flux: float, day: date) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as folder:
        perl = PerlMinimuf(Path(folder))
        rows = []
        for a, b, name in PATHS:
            ends = (*locator_to_latlon(a), *locator_to_latlon(b))
            cases = [(flux, day.month, day.day, float(h), *ends) for h in range(24)]
            ours = [minimuf(*c) for c in cases]
            ref = perl(cases)
            rows.append({"from": a, "to": b, "path": name,
                         "km": round(path_angle(*ends) * EARTH_RADIUS_KM),
                         "hamsrv": [round(x, 3) for x in ours], "dxspider": [round(x, 3) for x in ref],
                         "max_diff_mhz": max(abs(x - y) for x, y in zip(ours, ref, strict=True))})
    return rows


def markdown(rows: list[dict[str, object]], flux: float, day: date) -> str:
    out = [f"MINIMUF 3.5 path MUF (MHz), flux {flux:g}, {day.isoformat()}: hamsrv / DXSpider `Minimuf.pm`", "",
           "DXSpider walks the path from one end; hamsrv takes the lower of the walks from either end, so the",
           "two differ slightly where MINIMUF's formulae jump (they agree to 1e-9 with the same rule).", "",
           "| path | km | 00 UTC | 06 UTC | 12 UTC | 18 UTC | max diff (24 h) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r['hamsrv'][h]:.2f} / {r['dxspider'][h]:.2f}" for h in (0, 6, 12, 18)]  # type: ignore[index]
        out.append(f"| {r['from']}-{r['to']} {r['path']} | {r['km']} | " + " | ".join(cells)
                   + f" | {r['max_diff_mhz']:.1e} |")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flux", type=float, default=140.0)
    parser.add_argument("--date", type=date.fromisoformat, default=date(2026, 12, 3))
    args = parser.parse_args()
    rows = compare(args.flux, args.date)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "propagation.json").write_text(json.dumps({"flux": args.flux, "date": args.date.isoformat(),
                                                          "paths": rows}, indent=1))
    table = markdown(rows, args.flux, args.date)
    (RESULTS / "propagation.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
