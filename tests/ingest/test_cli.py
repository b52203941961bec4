"""`hamsrv import` and `hamsrv export` run as a user would, against a real database."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from psycopg.conninfo import conninfo_to_dict

from hamsrv.cli import main
from hamsrv.ingest.cli import SHOWN_REJECTS
from tests import testdata

TESTDATA = testdata.TESTDATA / "adif"


def as_url(conninfo: str) -> str:
    """A postgresql:// URL (what HAMSRV_DATABASE_URL takes) for a libpq key=value string."""
    params = conninfo_to_dict(conninfo)
    query = urlencode({k: v for k, v in params.items() if k not in ("user", "password", "dbname")})
    return f"postgresql://{quote(str(params.get('user', '')))}@/{params['dbname']}?{query}"


@pytest.fixture
def env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HAMSRV_DATABASE_URL", as_url(db_url))
    monkeypatch.setenv("HAMSRV_DATA_DIR", str(tmp_path))
    assert main(["user", "add", "W1AW"]) == 0
    return tmp_path


def test_import_shows_progress_and_a_summary(env: Path, capsys: pytest.CaptureFixture[str]):
    capsys.readouterr()
    files = [str(TESTDATA / "pyadif_latin1.adi"), str(TESTDATA / "wsjtx_300rc1_m7pxz.adi")]
    assert main(["import", *files, "--owner", "w1aw"]) == 0
    err = capsys.readouterr().err
    assert "pyadif_latin1.adi: read 5, inserted 2, duplicates 0, merged 0, up to date 0, rejected 3" in err
    assert "rejected record 3 (byte 579): CALL: missing" in err
    assert "wsjtx_300rc1_m7pxz.adi: read 1,700, inserted 1,691, duplicates 1, merged 0, up to date 0, rejected 8" in err
    assert "total: read 1,705, inserted 1,693, duplicates 1, merged 0, up to date 0, rejected 11" in err


def test_merge_flag(env: Path, capsys: pytest.CaptureFixture[str]):
    lotw = str(TESTDATA / "lotwreport_k9cts.adi")
    capsys.readouterr()
    assert main(["import", lotw, "--owner", "W1AW"]) == 0
    # the report holds one QSO twice (records 105 and 194, the same minute) with different QSL data: a plain import
    # keeps the first and names the second as the duplicate ...
    err = capsys.readouterr().err
    assert "read 438, inserted 437, duplicates 1, merged 0, up to date 0, rejected 0" in err
    assert "  duplicate record 194: KP4JRS 2021-07-18T05:57:00Z 40m FT8\n" in err
    # ... a merge applies the later one (the earlier is the duplicate) and says that the other 436
    # records changed nothing (issue 14: "a merge says how many records were already up to date")
    assert main(["import", lotw, "--owner", "W1AW", "--merge"]) == 0
    err = capsys.readouterr().err
    assert "read 438, inserted 0, duplicates 1, merged 1, up to date 436, rejected 0" in err
    assert "  duplicate record 105: KP4JRS 2021-07-18T05:57:45Z 40m FT8\n" in err


def test_export_to_a_file_and_back(env: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["import", str(TESTDATA / "n3fjp_aclog_export.adi"), "--owner", "W1AW"]) == 0
    for fmt in ("adi", "adx"):
        out = env / f"log.{fmt}"
        assert main(["export", "--owner", "W1AW", "--format", fmt, "-o", str(out)]) == 0
        capsys.readouterr()
        assert main(["import", str(out), "--owner", "W1AW"]) == 0
        err = capsys.readouterr().err
        assert "read 437, inserted 0, duplicates 437, merged 0, up to date 0, rejected 0" in err
        # the first duplicates are named with their record numbers, the rest counted (issue 14)
        assert [line.split(":")[0] for line in err.splitlines() if line.startswith("  duplicate record ")] == [
            f"  duplicate record {n}" for n in range(1, SHOWN_REJECTS + 1)]
        assert f"  ... and {437 - SHOWN_REJECTS} more duplicates\n" in err
    assert main(["export", "--owner", "W1AW", "--since", "2100-01-01"]) == 0
    exported = capsys.readouterr().out
    assert exported.count("<EOR>") == 0 and "<PROGRAMID:6>hamsrv" in exported


@pytest.mark.parametrize(("argv", "message"), [
    (["import", "missing.adi", "--owner", "W1AW"], "no such file: missing.adi"),
    (["import", str(TESTDATA / "hamrs_pota.adi"), "--owner", "N0BODY"], "no user N0BODY"),
    (["export", "--owner", "N0BODY"], "no user N0BODY"),
])
def test_errors_are_one_line(env: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str):
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"hamsrv: {message} (create it with: hamsrv user add N0BODY)" or err.strip() == f"hamsrv: {message}"


def test_bad_since_is_a_usage_error(env: Path, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--owner", "W1AW", "--since", "yesterday"])
    assert exit_info.value.code == 2
    assert "'yesterday' is not a date" in capsys.readouterr().err
