"""Where the shared real-world test files are: `shared/testdata` beside the repository (CI lays it there)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTDATA = REPO.parent / "shared" / "testdata"
