"""LoTW/eQSL logins over the API: 204, sealed at rest, never returned or logged; key rotation."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from hamsrv.db.database import Database
from hamsrv.identity.vault import KEY_FILE, Vault, new_key
from hamsrv.sync.qsl_cli import rotate_keys
from hamsrv.sync.qsl_store import Login, load_login, save_login
from tests.api import Api

PASSWORD = "correct horse battery staple"


async def _user_id(db: Database, call: str) -> int:
    row = await db.fetchrow("SELECT id FROM users WHERE callsign = %s", [call])
    assert row is not None
    return int(row["id"])


async def test_put_stores_it_sealed_and_delete_removes_it(qsl_api: Api, db: Database,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with qsl_api.client(qsl_api.token) as client:
        for service in ("lotw", "eqsl"):
            r = await client.put(f"/api/qsl/credentials/{service}", json={"username": "w1aw", "password": PASSWORD})
            assert r.status_code == 204 and r.content == b""
        rows = await db.fetch("SELECT service, secret FROM qsl_accounts")
        assert len(rows) == 2
        for row in rows:
            assert PASSWORD.encode() not in bytes(row["secret"]) and b"w1aw" not in bytes(row["secret"])
        w1aw = await _user_id(db, "W1AW")
        login = await load_login(db, qsl_api.state.qsl.vault, w1aw, "lotw")
        assert login == Login("w1aw", PASSWORD) and PASSWORD not in repr(login)

        assert (await client.delete("/api/qsl/credentials/lotw")).status_code == 204
        assert (await client.delete("/api/qsl/credentials/lotw")).status_code == 404
        assert await load_login(db, qsl_api.state.qsl.vault, w1aw, "lotw") is None
        assert await load_login(db, qsl_api.state.qsl.vault, w1aw, "eqsl") is not None
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize(("body", "field"), [
    ({"username": "w1aw"}, "password"),
    ({"password": "x"}, "username"),
    ({"username": "", "password": "x"}, "username"),
    ({"username": 5, "password": "x"}, "username"),
    ({"username": "w1aw", "password": "x", "pasword": "typo"}, "pasword"),
    ({"username": "w1aw\n", "password": "x"}, "username"),
    ({"username": "w1aw", "password": "x" * 300}, "password"),
])
async def test_bad_bodies_are_400_naming_the_field(qsl_api: Api, body: dict[str, object], field: str) -> None:
    async with qsl_api.client(qsl_api.token) as client:
        r = await client.put("/api/qsl/credentials/lotw", json=body)
    assert r.status_code == 400 and r.json()["field"] == field, r.text


async def test_unknown_service_is_404_and_no_token_is_401(qsl_api: Api) -> None:
    async with qsl_api.client(qsl_api.token) as client:
        r = await client.put("/api/qsl/credentials/qrz", json={"username": "a", "password": "b"})
        assert r.status_code == 404 and "lotw" in r.json()["error"]
    async with qsl_api.client() as anonymous:
        r = await anonymous.put("/api/qsl/credentials/lotw", json={"username": "a", "password": "b"})
        assert r.status_code == 401


async def test_rotation_with_the_key_file_makes_a_new_key_and_reseals(db: Database, tmp_path: Path) -> None:
    user = (await db.fetchrow("INSERT INTO users (callsign) VALUES ('W1AW') RETURNING *"))
    assert user is not None
    old_vault = Vault.load(None, tmp_path)
    await save_login(db, old_vault, user, "lotw", Login("w1aw", PASSWORD))
    before = (await db.fetchrow("SELECT secret FROM qsl_accounts"))["secret"]  # type: ignore[index]

    message = await rotate_keys(db, None, tmp_path)
    assert "1 stored logins resealed" in message
    path = tmp_path / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_text().split()) == 1
    new_vault = Vault.load(None, tmp_path)
    assert new_vault.keys != old_vault.keys
    after = (await db.fetchrow("SELECT secret FROM qsl_accounts"))["secret"]  # type: ignore[index]
    assert bytes(after) != bytes(before) and new_vault.sealed_with_current(bytes(after))
    assert await load_login(db, new_vault, user["id"], "lotw") == Login("w1aw", PASSWORD)


async def test_rotation_with_configured_keys_reseals_with_the_first(db: Database, tmp_path: Path) -> None:
    user = (await db.fetchrow("INSERT INTO users (callsign) VALUES ('W1AW') RETURNING *"))
    assert user is not None
    old, new = new_key(), new_key()
    await save_login(db, Vault.load(old, tmp_path), user, "eqsl", Login("w1aw", PASSWORD))
    message = await rotate_keys(db, f"{new},{old}", tmp_path)
    assert message.startswith("1 stored logins resealed")
    assert await load_login(db, Vault.load(new, tmp_path), user["id"], "eqsl") == Login("w1aw", PASSWORD)
    assert "0 stored logins resealed" in await rotate_keys(db, new, tmp_path)
