"""Issue 14: the `hamsrv` command as a user runs it (real subprocesses, a real embedded PostgreSQL or the
test database): --version, user and token management, per-command help, quiet output, no database made
by surprise, and imports that refuse what is not ADIF and exit non-zero when nothing was imported."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import testdata
from tests.ingest.test_cli import as_url

REPO = testdata.REPO
ADIF = testdata.TESTDATA / "adif"


def run(*args: str, env: dict[str, str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hamsrv.cli", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=120)


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    """The test database by URL (no embedded server), the repository importable from any folder."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("HAMSRV_")}
    return {**base, "HAMSRV_DATABASE_URL": as_url(db_url), "HAMSRV_DATA_DIR": str(tmp_path),
            "PYTHONPATH": str(REPO)}


def test_version_and_per_command_help(env: dict[str, str]) -> None:
    version = run("--version", env=env)
    assert version.returncode == 0 and re.fullmatch(r"hamsrv \S+\n", version.stdout)
    help_text = run("user", "list", "--help", env=env).stdout
    assert "--data-dir" in help_text and "--database-url" in help_text
    assert "--cluster-links" not in help_text and "--tick-ms" not in help_text  # serve's flags only there
    add_help = run("user", "add", "--help", env=env).stdout
    assert re.search(r"callsign\s+the user's callsign", add_help)
    assert "--cluster-links" in run("serve", "--help", env=env).stdout


def test_users_and_tokens(env: dict[str, str]) -> None:
    added = run("user", "add", "w1aw", "--email", "w1aw@example.org", env=env)
    assert added.returncode == 0 and added.stderr == ""  # quiet: no log lines
    token = added.stdout.split()[-1]
    assert run("user", "add", "K1ABC", env=env).returncode == 0
    assert run("user", "token", "W1AW", "--name", "laptop", env=env).returncode == 0
    listed = run("user", "list", env=env)
    assert listed.returncode == 0 and listed.stderr == ""
    assert re.search(r"^W1AW\s+0\s+2\s+\S+ \S+\s+w1aw@example.org$", listed.stdout, re.M), listed.stdout
    assert listed.stdout.rstrip().endswith("2 users")
    tokens = run("token", "list", "W1AW", env=env).stdout
    ids = [int(line.split()[0]) for line in tokens.splitlines()[1:]]
    assert len(ids) == 2 and "laptop" in tokens and token not in tokens  # never the token itself
    revoked = run("token", "revoke", "W1AW", str(ids[0]), env=env)
    assert revoked.returncode == 0 and f"token {ids[0]} of W1AW revoked" in revoked.stdout
    again = run("token", "revoke", "W1AW", str(ids[0]), env=env)
    assert again.returncode == 1 and again.stderr.startswith("hamsrv: W1AW has no token")
    assert len(run("token", "list", "W1AW", env=env).stdout.splitlines()) == 2  # header + one token
    unsure = run("user", "delete", "K1ABC", env=env)
    assert unsure.returncode == 1 and "--yes" in unsure.stderr
    assert run("user", "delete", "K1ABC", "--yes", env=env).returncode == 0
    assert "K1ABC" not in run("user", "list", env=env).stdout
    gone = run("user", "delete", "K1ABC", "--yes", env=env)
    assert gone.returncode == 1 and gone.stderr.strip() == "hamsrv: no user K1ABC"


def test_a_data_dir_without_a_database_is_not_created_by_surprise(tmp_path: Path) -> None:
    """From another folder, the default ./var is not the server's: say so instead of creating one."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("HAMSRV_")}
    env = {**base, "PYTHONPATH": str(REPO)}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    refused = run("user", "list", env=env, cwd=elsewhere)
    assert refused.returncode == 2
    assert f"no hamsrv database in {elsewhere / 'var'}" in refused.stderr and "--create" in refused.stderr
    assert not (elsewhere / "var").exists()
    data = tmp_path / "data"
    created = run("user", "add", "W1AW", "--data-dir", str(data), "--create", env=env, cwd=elsewhere)
    assert created.returncode == 0, created.stderr
    assert "embedded PostgreSQL" not in created.stderr  # INFO lines only with -v
    verbose = run("-v", "user", "list", env={**env, "HAMSRV_DATA_DIR": str(data)}, cwd=elsewhere)
    assert verbose.returncode == 0 and "W1AW" in verbose.stdout
    assert "embedded PostgreSQL running in" in verbose.stderr


def test_import_refuses_what_is_not_adif_and_fails_when_nothing_was_imported(env: dict[str, str],
                                                                            tmp_path: Path) -> None:
    assert run("user", "add", "W1AW", env=env).returncode == 0
    for name, content in (("notes.md", b"# My log\n\nSome *markdown*.\n"), ("blob.bin", bytes(range(256)) * 50),
                          ("empty.adi", b"")):
        path = tmp_path / name
        path.write_bytes(content)
        refused = run("import", str(path), "--owner", "W1AW", env=env)
        assert refused.returncode == 1 and refused.stderr.startswith(f"hamsrv: {path}:"), refused.stderr
        assert "read 0" not in refused.stderr
    bad = tmp_path / "bad.adi"
    bad.write_text("<CALL:4>W1AW<QSO_DATE:8>20240101<TIME_ON:4>1200<BAND:3>20m<MODE:6>BANANA<EOR>\n"
                   "<CALL:4>K1AB<QSO_DATE:8>20240101<TIME_ON:4>1200<BAND:3>20m<FREQ:3>7.1<EOR>\n")
    failed = run("import", str(bad), "--owner", "W1AW", env=env)
    assert failed.returncode == 1
    assert "inserted 0, duplicates 0, merged 0, up to date 0, rejected 2" in failed.stderr
    assert "MODE: 'BANANA' is not an ADIF mode" in failed.stderr
    warned = run("import", str(ADIF / "loghx_single.adi"), "--owner", "W1AW", env=env)
    assert warned.returncode == 0 and "inserted 1" in warned.stderr
    assert "  warning, record 1:" in warned.stderr  # the warnings the HTTP summary lists


def test_a_lotw_dxcc_credit_report_imports_its_confirmations_with_a_note(env: dict[str, str]) -> None:
    """LoTW's DXCC QSL Card Report has no TIME_ON or MODE: its records become confirmations by call, band,
    mode group and date, and the summary says so (it rejected every record with `TIME_ON: missing`)."""
    assert run("user", "add", "W1AW", env=env).returncode == 0
    imported = run("import", str(ADIF / "lotw_qslcards_dxcc_report.adi"), "--owner", "W1AW", env=env)
    assert imported.returncode == 0, imported.stderr
    assert "read 1, inserted 1, duplicates 0, merged 0, up to date 0, rejected 0" in imported.stderr
    assert "warning, byte 0: a LoTW DXCC QSL Card Report" in imported.stderr
    assert "stored at 00:00 UTC" in imported.stderr
    exported = run("export", "--owner", "W1AW", env=env).stdout
    assert "<CALL:6>VA1RJR <QSO_DATE:8>20230216 <TIME_ON:6>000000 <BAND:3>17m <LOTW_QSL_RCVD:1>Y" in exported
    assert "<APP_HAMSRV_NOTE:" in exported and "<APP_LOTW_MODEGROUP:4>DATA" in exported


def test_oversized_records_are_rejected_by_the_import_as_by_the_api(env: dict[str, str], tmp_path: Path) -> None:
    """Issue 14's sizes: a 20 MB comment, 100,000 extra fields (the API answers both with 413)."""
    assert run("user", "add", "W1AW", env=env).returncode == 0
    qso = "<CALL:4>W1AW<QSO_DATE:8>20240101<TIME_ON:4>{}<BAND:3>20m<MODE:2>CW"
    big = tmp_path / "big.adi"
    big.write_text(qso.format("1200") + "<COMMENT:20000000>" + "x" * 20_000_000 + "<EOR>\n"
                   + qso.format("1201") + "".join(f"<APP_T_F{i}:1>1" for i in range(100_000)) + "<EOR>\n"
                   + qso.format("1202") + "<COMMENT:2>ok<EOR>\n")
    result = run("import", str(big), "--owner", "W1AW", env=env)
    assert result.returncode == 0, result.stderr
    assert "read 3, inserted 1, duplicates 0, merged 0, up to date 0, rejected 2" in result.stderr
    # the comment was dropped with a warning and the QSO stored; now refused as the API refuses it
    assert "rejected record 1 (byte 68): COMMENT: longer than 65536 bytes\n" in result.stderr
    assert "rejected record 2 (byte 20000092): record: record 2 is larger than 1048576 bytes" in result.stderr
