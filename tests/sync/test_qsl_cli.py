"""`hamsrv qsl sync CALL` and `hamsrv keys rotate` as a user runs them, and the whole app scheduling every
stored login's sync at start."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import trio

from hamsrv import config as config_mod
from hamsrv.db.database import Database, conninfo_url
from hamsrv.identity.tokens import add_user
from hamsrv.identity.vault import KEY_FILE, Vault
from hamsrv.sync.qsl_store import Login, load_login, save_login
from tests.sync.fake_services import Account, FakeServices, start_fake_services
from tests.testdata import REPO

PASSWORD = "Cli-Pa55word"


async def hamsrv(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process([sys.executable, "-m", "hamsrv.cli", *args], cwd=REPO, env=env,
                                  capture_stdout=True, capture_stderr=True, check=False)


def env_for(tmp_path: Path, db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAMSRV_")}
    env.update(HAMSRV_DATA_DIR=str(tmp_path), HAMSRV_DATABASE_URL=conninfo_url(db_url), **extra)
    return env


async def test_qsl_sync_command_reports_in_words_and_never_prints_the_password(
        db: Database, db_url: str, tmp_path: Path, nursery: trio.Nursery) -> None:
    fake = await start_fake_services(nursery, FakeServices())
    fake.lotw["k9cts"] = Account(PASSWORD)
    fake.eqsl["K9CTS"] = Account("another", behaviour="ok")
    user = await add_user(db, "K9CTS")
    vault = Vault.load(None, tmp_path)
    await save_login(db, vault, user, "lotw", Login("k9cts", PASSWORD))
    await save_login(db, vault, user, "eqsl", Login("K9CTS", PASSWORD))  # eQSL will refuse it
    env = env_for(tmp_path, db_url, HAMSRV_LOTW_URL=fake.url, HAMSRV_EQSL_URL=fake.url)

    done = await hamsrv("qsl", "sync", "k9cts", "--service", "lotw", env=env)
    out = (done.stdout + done.stderr).decode()
    assert done.returncode == 0, out
    assert "K9CTS LoTW: done: 438 new LoTW confirmations, 0 matched to the log, 438 without a QSO yet" in out

    both = await hamsrv("qsl", "sync", "K9CTS", env=env)
    out = (both.stdout + both.stderr).decode()
    assert both.returncode == 1, out
    assert "K9CTS eQSL: failed: eQSL refused the username or password" in out
    assert "K9CTS LoTW: done: 0 new LoTW confirmations" in out
    assert PASSWORD not in out and "password=" not in out.lower()

    nobody = await hamsrv("qsl", "sync", "N0BODY", env=env)
    assert nobody.returncode == 1 and nobody.stderr.decode().strip() == "hamsrv: no user N0BODY"


async def test_keys_rotate_command(db: Database, db_url: str, tmp_path: Path) -> None:
    user = await add_user(db, "W1AW")
    await save_login(db, Vault.load(None, tmp_path), user, "lotw", Login("w1aw", PASSWORD))
    old_key = (tmp_path / KEY_FILE).read_text()
    done = await hamsrv("keys", "rotate", env=env_for(tmp_path, db_url))
    assert done.returncode == 0, done.stderr
    assert "1 stored logins resealed" in done.stdout.decode()
    assert (tmp_path / KEY_FILE).read_text() != old_key and (tmp_path / KEY_FILE).stat().st_mode & 0o077 == 0
    assert await load_login(db, Vault.load(None, tmp_path), user["id"], "lotw") == Login("w1aw", PASSWORD)
    new = await hamsrv("keys", "new", env=env_for(tmp_path, db_url))
    assert len(new.stdout.decode().strip()) == 44


async def test_the_app_schedules_stored_logins_at_start(
        db: Database, app_config: config_mod.Config, nursery: trio.Nursery) -> None:
    from hamsrv.app import Running, run

    fake = await start_fake_services(nursery, FakeServices())
    fake.lotw["w1aw"] = Account(PASSWORD, behaviour="empty")
    user = await add_user(db, "W1AW")
    await save_login(db, Vault.load(None, app_config.data_dir), user, "lotw", Login("w1aw", PASSWORD))
    config = replace(app_config, lotw_url=fake.url, eqsl_url=fake.url)
    handle: Running = await nursery.start(lambda task_status: run(config, handle_signals=False,
                                                                  task_status=task_status))
    try:
        with trio.fail_after(20):
            while (row := await db.fetchrow("SELECT status, summary FROM sync_state WHERE name = 'lotw:W1AW'")) \
                    is None or row["status"] != "ok":
                await trio.sleep(0.05)
        assert row["summary"] == "0 new LoTW confirmations, 0 matched to the log, 0 without a QSO yet"
        assert [path for path, _ in fake.requests] == ["/lotwuser/lotwreport.adi"]
    finally:
        handle.shutdown.set()
