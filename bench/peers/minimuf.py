"""The reference for hamsrv's MINIMUF: DXSpider's own `perl/Minimuf.pm`, run by perl from the DXSpider
tarball in shared/peers (extracted to a temporary folder, never copied into the repository)."""

from __future__ import annotations

import math
import shutil
import subprocess
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PEERS = REPO.parent / "shared" / "peers" / "dxspider"

_DRIVER = r"""
use strict; use lib $ARGV[0]; use Minimuf;
while (my $line = <STDIN>) {
    my @a = split ' ', $line;
    printf "%.10f\n", Minimuf::minimuf(@a);
}
"""


class PerlMinimuf:
    """Evaluates many inputs through one perl process."""

    def __init__(self, folder: Path):
        if shutil.which("perl") is None:
            raise RuntimeError("perl is needed to run DXSpider's Minimuf.pm as the reference")
        tarballs = sorted(PEERS.glob("dxspider-*.tar.gz"))
        if not tarballs:
            raise RuntimeError(f"no DXSpider tarball in {PEERS}")
        with tarfile.open(tarballs[0]) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("perl/Minimuf.pm"))
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
        (folder / "Minimuf.pm").write_bytes(data)
        (folder / "DXDebug.pm").write_text("package DXDebug; 1;\n")  # Minimuf.pm loads it, never calls it
        self.folder = folder

    def __call__(self, cases: list[tuple[float, int, int, float, float, float, float, float]]) -> list[float]:
        """Cases as (flux, month, day, hour, lat1, lon1, lat2, lon2) in degrees, east-positive longitude."""
        rad = math.radians
        lines = "".join(f"{f} {m} {d} {h} {rad(a1)} {-rad(o1)} {rad(a2)} {-rad(o2)}\n"
                        for f, m, d, h, a1, o1, a2, o2 in cases)
        out = subprocess.run(["perl", "-e", _DRIVER, str(self.folder)], input=lines, capture_output=True,
                             text=True, check=True, timeout=60).stdout
        return [float(x) for x in out.split()]
