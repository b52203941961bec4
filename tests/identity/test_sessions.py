"""Sessions on the main site: cookie attributes, bearer use, cross-site writes refused, logout, log out
everywhere, expiry, roles and trust levels; API tokens keep working."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
import trio

from hamsrv.cli import main
from hamsrv.db.database import Database
from hamsrv.identity import sessions
from tests.api import Api, running_api
from tests.ingest.test_cli import as_url

QSO = {"call": "IP0TRC", "qso_date": "20240101", "time_on": "1200", "band": "20m", "mode": "CW"}


@pytest.fixture
async def api(db: Database, nursery: trio.Nursery) -> AsyncIterator[Api]:
    async with running_api(db, nursery) as served:
        yield served


async def session_for(api: Api, call: str = "W1AW", method: str = "email") -> str:
    user = await sessions.ensure_user(api.state.db, call, sessions.METHOD_TRUST[method])
    return await sessions.start_session(api.state.db, user["id"], method, "127.0.0.1", timedelta(days=1))


def browser(api: Api, token: str, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=api.url, cookies={sessions.COOKIE: token}, headers=headers, timeout=30)


async def test_me_tells_who_is_signed_in_by_cookie_bearer_or_api_token(api: Api):
    token = await session_for(api)
    async with browser(api, token) as client:
        me = (await client.get("/api/me")).json()
    assert (me["callsign"], me["trust"], me["method"], me["roles"]) == ("W1AW", "medium", "email", ["user"])
    async with api.client(token) as client:
        assert (await client.get("/api/me")).json()["callsign"] == "W1AW"
    async with api.client(api.other_token) as client:
        me = (await client.get("/api/me")).json()
    assert (me["callsign"], me["method"], me["trust"]) == ("K1ABC", "token", "medium")
    async with httpx.AsyncClient(base_url=api.url) as anonymous:
        response = await anonymous.get("/api/me")
    assert response.status_code == 401 and response.json()["error"].startswith("sign in first")
    async with browser(api, api.token) as client:  # an API token is not accepted as a cookie
        assert (await client.get("/api/me")).status_code == 401


async def test_cookie_writes_need_this_sites_origin(api: Api):
    token = await session_for(api)
    async with browser(api, token) as client:
        no_origin = await client.post("/api/qsos", json=QSO)
        evil = await client.post("/api/qsos", json=QSO, headers={"Origin": "https://evil.example"})
        other_port = await client.post("/api/qsos", json=QSO, headers={"Origin": "http://127.0.0.1:1"})
        same = await client.post("/api/qsos", json=QSO, headers={"Origin": api.url})
        delete = await client.delete(f"/api/qsos/{same.json()['id']}", headers={"Origin": "null"})
        read = await client.get("/api/qsos", headers={"Origin": "https://evil.example"})  # reads are not writes
    assert [r.status_code for r in (no_origin, evil, other_port, same, delete, read)] == [403, 403, 403, 201, 403, 200]
    assert no_origin.json()["field"] == "Origin"
    async with api.client(token) as script:  # the same session as a bearer token: no Origin needed
        assert (await script.post("/api/qsos", json={**QSO, "time_on": "1300"})).status_code == 201


async def test_logout_ends_this_session_only(api: Api):
    first, second = await session_for(api), await session_for(api)
    async with browser(api, first, Origin=api.url) as client:
        response = await client.post("/api/auth/logout")
        assert response.status_code == 200
        assert 'hamsrv_session=""' in response.headers["set-cookie"] or "Max-Age=0" in response.headers["set-cookie"]
    async with browser(api, first) as client:
        assert (await client.get("/api/me")).status_code == 401
    async with browser(api, second) as client:
        assert (await client.get("/api/me")).status_code == 200
    async with api.client(api.token) as script:  # API tokens are not sessions
        assert (await script.post("/api/auth/logout")).status_code == 400


async def test_logout_everywhere_ends_every_session_but_keeps_api_tokens(api: Api):
    tokens = [await session_for(api) for _ in range(3)]
    other = await session_for(api, "K1ABC")
    async with browser(api, tokens[0], Origin=api.url) as client:
        assert (await client.post("/api/auth/logout-everywhere")).json() == {"ended": 3}
    for token in tokens:
        async with browser(api, token) as client:
            assert (await client.get("/api/me")).status_code == 401
    async with api.client(api.token) as script:
        assert (await script.get("/api/me")).json()["callsign"] == "W1AW"
    async with browser(api, other) as client:
        assert (await client.get("/api/me")).status_code == 200


async def test_expired_sessions_are_refused_and_swept(api: Api):
    token = await session_for(api)
    await api.state.db.execute("UPDATE sessions SET expires_at = now() - interval '1 second'")
    async with browser(api, token) as client:
        assert (await client.get("/api/me")).status_code == 401
    assert await sessions.delete_expired(api.state.db) == 1
    assert await api.state.db.fetch("SELECT * FROM sessions") == []


async def test_the_cookie_is_httponly_lax_and_not_secure_over_plain_http(api: Api):
    from quart import Response

    response = Response("")
    from hamsrv.http.signin import set_session_cookie

    set_session_cookie(response, api.state, "hamsess_x")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert f"Max-Age={30 * 86400}" in cookie


async def test_a_session_is_only_as_trusted_as_its_sign_in(api: Api):
    await sessions.ensure_user(api.state.db, "W1AW", 3)  # W1AW signed in with LoTW once
    low = await session_for(api, "W1AW", "qrz")
    async with browser(api, low, Origin=api.url) as client:
        me = (await client.get("/api/me")).json()
        assert (me["trust"], me["account_trust"]) == ("low", "high")
        response = await client.post("/api/cluster-password", json={"password": "correct horse"})
    assert response.status_code == 403 and "medium" in response.json()["error"]
    await sessions.set_trust(api.state.db, "W1AW", 0)  # the operator lowers the account: sessions follow
    medium = await session_for(api, "W1AW", "email")
    async with browser(api, medium) as client:
        assert (await client.get("/api/me")).json()["trust"] == "medium"
    assert (await api.state.db.fetchrow("SELECT trust_level FROM users WHERE callsign = 'W1AW'"))["trust_level"] == 2


async def test_admin_role(api: Api):
    async with api.client(api.token) as client:
        assert (await client.get("/api/admin/users")).status_code == 403
        await sessions.set_role(api.state.db, "W1AW", "admin")
        body = (await client.get("/api/admin/users")).json()
    assert [(u["callsign"], u["roles"]) for u in body["users"]] == [("K1ABC", ["user"]), ("W1AW", ["user", "admin"])]


def test_cli_sets_roles_and_trust(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("HAMSRV_DATABASE_URL", as_url(db_url))
    monkeypatch.setenv("HAMSRV_DATA_DIR", str(tmp_path))
    assert main(["user", "add", "W1AW"]) == 0
    assert main(["user", "role", "w1aw", "admin"]) == 0
    assert main(["user", "trust", "W1AW", "high"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "W1AW: roles user, admin; trust high"
    assert main(["user", "role", "N0CALL", "admin"]) == 1
    assert "no user N0CALL" in capsys.readouterr().err
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT roles, trust_level FROM users").fetchall() == [(["admin"], 3)]
    assert main(["user", "role", "W1AW", "user"]) == 0
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT roles FROM users").fetchall() == [([],)]


async def test_import_progress_websocket_takes_the_cookie_only_from_this_site(api: Api):
    from trio_websocket import ConnectionRejected, open_websocket_url

    token = await session_for(api)
    url = f"ws://127.0.0.1:{api.port}/ws/imports"
    cookie = ("Cookie", f"{sessions.COOKIE}={token}")
    async with api.client(token) as client:  # a queued job (no runner here): the socket starts with it
        data = b"<CALL:6>IP0TRC<QSO_DATE:8>20240101<TIME_ON:4>1200<BAND:3>20m<MODE:2>CW<EOR>"
        job = (await client.post("/api/imports", content=data)).json()["id"]
    async with open_websocket_url(url, extra_headers=[cookie, ("Origin", api.url)]) as ws:
        with trio.fail_after(10):
            event = json.loads(await ws.get_message())
        assert event["id"] == job
    for headers in ([cookie, ("Origin", "https://evil.example")], [cookie]):
        with pytest.raises(ConnectionRejected) as refused:
            async with open_websocket_url(url, extra_headers=headers):
                pass
        assert refused.value.status_code == 401  # a JSON refusal before the upgrade
