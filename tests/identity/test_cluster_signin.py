"""Cluster-port sign-in: `login: CALL SECRET` with the account's cluster password or an API token; the
user's spots carry "verified": true on the firehose; everyone else's do not."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import trio
from hypothesis import given
from hypothesis import strategies as st
from trio_websocket import open_websocket_url

from hamsrv.firehose.session import CheckSecret, ClusterSession, LoggedIn, Publish, Send, State
from hamsrv.identity.sessions import ensure_user, start_session
from hamsrv.identity.tokens import issue_token
from tests.test_e2e_firehose import read_until


def clock() -> datetime:
    return datetime(2026, 1, 2, 13, 7, tzinfo=UTC)


def sent(events: list[Any]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Send))


# ---- the sans-I/O session
def test_a_second_word_asks_the_server_and_only_its_yes_verifies():
    session = ClusterSession(accounts=True, clock=clock)
    assert session.receive_data(b"w1aw-2 hunter22\r\nsh/dx\r\n") == [CheckSecret("W1AW-2", "hunter22")]
    assert session.state is State.VERIFYING  # the line typed ahead is dropped
    events = session.secret_checked(True)
    assert LoggedIn("W1AW-2", feed=False) in events and b"verified" in sent(events)
    [publish] = [e for e in session.receive_data(b"DX 14025 IP0TRC cq\r\n") if isinstance(e, Publish)]
    assert publish.spot.verified and publish.spot.spotter == "W1AW-2"


def test_a_no_is_another_try_and_never_echoes_the_secret():
    session = ClusterSession(accounts=True, clock=clock, max_login_attempts=2)
    session.receive_data(b"W1AW guess1\r\n")
    events = session.secret_checked(False)
    assert session.state is State.LOGIN and b"invalid login" in sent(events) and b"guess" not in sent(events)
    session.receive_data(b"W1AW guess2\r\n")
    assert b"too many invalid logins" in sent(session.secret_checked(False))
    assert session.state is State.CLOSED


def test_without_accounts_or_with_one_word_nothing_changes():
    plain = ClusterSession(clock=clock)
    assert b"invalid login" in sent(plain.receive_data(b"W1AW secret\r\n"))
    user = ClusterSession(accounts=True, clock=clock)
    assert LoggedIn("W1AW", feed=False) in user.receive_data(b"W1AW\r\n")
    [publish] = [e for e in user.receive_data(b"DX 14025 IP0TRC\r\n") if isinstance(e, Publish)]
    assert not publish.spot.verified
    assert user.secret_checked(True) == []  # an answer nobody asked for changes nothing


@given(st.lists(st.binary(max_size=40), max_size=8), st.booleans())
def test_verified_only_after_the_servers_yes(chunks: list[bytes], answer: bool) -> None:
    session = ClusterSession(accounts=True, clock=clock)
    for chunk in chunks:
        for event in session.receive_data(chunk):
            if isinstance(event, CheckSecret):
                session.secret_checked(answer)
            if isinstance(event, Publish) and event.by_user:
                assert event.spot.verified == (answer and session.verified)
    assert session.verified <= answer


# ---- against the running app
async def login(port: int, line: bytes) -> tuple[trio.SocketStream, bytearray, bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    buf = bytearray()
    await read_until(stream, b"login: ", buf)
    await stream.send_all(line + b"\r\n")
    with trio.fail_after(10):
        while b">" not in buf and b"login: " not in buf and b"goodbye" not in buf:
            data = await stream.receive_some(4096)
            if not data:
                break
            buf += data
    return stream, buf, bytes(buf)


async def test_password_and_token_sign_ins_give_verified_spots_on_the_firehose(running: Any):
    db = running.db
    w1aw = await ensure_user(db, "W1AW", 2)
    k1abc = await ensure_user(db, "K1ABC", 2)
    token = await issue_token(db, k1abc["id"])
    session = await start_session(db, w1aw["id"], "email", "127.0.0.1", timedelta(days=1))
    url = f"http://127.0.0.1:{running.http_port}"
    async with httpx.AsyncClient(base_url=url, headers={"Origin": url}, cookies={"hamsrv_session": session}) as web:
        short = await web.post("/api/cluster-password", json={"password": "short"})
        assert short.status_code == 400 and short.json()["field"] == "password"
        assert (await web.post("/api/cluster-password", json={"password": "hunter22 horse"})).status_code == 200
    stored = await db.fetchrow("SELECT cluster_password FROM users WHERE callsign = 'W1AW'")
    assert stored["cluster_password"].startswith("scrypt$") and "hunter22" not in stored["cluster_password"]

    port = running.cluster_port
    by_password, _, greeting = await login(port, b"W1AW hunter22 horse")
    assert b"verified" not in greeting  # "hunter22 horse" is two words: only the first is the password
    await by_password.aclose()
    async with httpx.AsyncClient(base_url=url, headers={"Origin": url}, cookies={"hamsrv_session": session}) as web:
        assert (await web.post("/api/cluster-password", json={"password": "hunter22-horse"})).status_code == 200
    by_password, _, greeting = await login(port, b"W1AW-2 hunter22-horse")
    assert b"your spots are marked verified" in greeting
    by_token, _, greeting = await login(port, b"K1ABC " + token.encode())
    assert b"your spots are marked verified" in greeting
    wrong, _, greeting = await login(port, b"K1ABC hunter22-horse")  # another account's password
    assert b"invalid login" in greeting
    stolen, _, greeting = await login(port, b"W1AW " + token.encode())  # K1ABC's token for W1AW
    assert b"invalid login" in greeting
    anyone, _, greeting = await login(port, b"G4XYZ")
    assert b"G4XYZ" in greeting and b"verified" not in greeting

    async with open_websocket_url(f"ws://127.0.0.1:{running.http_port}/ws/firehose") as ws:
        await by_password.send_all(b"DX 14025 IP0TRC cq\r\n")
        await by_token.send_all(b"DX 7025 PY2ABC\r\n")
        await anyone.send_all(b"DX 21025 ZS6XYZ\r\n")
        got: dict[str, dict[str, Any]] = {}
        with trio.fail_after(10):
            while len(got) < 3:
                message = json.loads(await ws.get_message())
                if isinstance(message, list):
                    got.update({spot["spotter"]: spot for spot in message})
    assert got["W1AW-2"]["verified"] is True and got["K1ABC"]["verified"] is True
    assert "verified" not in got["G4XYZ"]
    for stream in (by_password, by_token, wrong, stolen, anyone):
        await stream.aclose()


async def test_low_trust_accounts_cannot_set_a_cluster_password_or_sign_in(running: Any):
    db = running.db
    user = await ensure_user(db, "W1QRZ", 1)
    token = await issue_token(db, user["id"])
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.http_port}",
                                 headers={"Authorization": f"Bearer {token}"}) as script:
        response = await script.post("/api/cluster-password", json={"password": "hunter22-horse"})
    assert response.status_code == 403 and "medium" in response.json()["error"]
    stream, _, greeting = await login(running.cluster_port, b"W1QRZ " + token.encode())
    assert b"invalid login" in greeting
    await stream.aclose()
