"""FCC e-mail code sign-in against a real SMTP server (aiosmtpd): the address comes only from the
callbook, the code is hashed at rest, expires, allows 5 tries and is rate-limited."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from hamsrv.db.database import Database
from hamsrv.identity.policy import Policy
from tests.api import Api, running_api
from tests.identity.conftest import MailServer


@pytest.fixture
async def api(db: Database, smtp: MailServer, nursery: trio.Nursery) -> AsyncIterator[Api]:
    await db.execute("INSERT INTO callbook (callsign, name, email, license_status) VALUES"
                     " ('W1XYZ', 'JOHN Q OPERATOR', 'kb1abc@example.org', 'A'),"
                     " ('N0OLD', 'GONE', 'old@example.org', 'E'), ('N0MAIL', 'NO MAIL', NULL, 'A')")
    async with running_api(db, nursery, identity=Policy(smtp_url=smtp.url)) as served:
        yield served


def anonymous(api: Api) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=api.url, timeout=30)


def code_in(message) -> str:
    match = re.search(r"\b(\d{6})\b", message.get_payload())
    assert match, message.get_payload()
    return match.group(1)


async def test_from_nothing_to_a_signed_in_page_session(api: Api, smtp: MailServer):
    async with anonymous(api) as client:
        started = await client.post("/api/auth/email", json={"callsign": "w1xyz", "email": "evil@attacker.example"})
        assert started.status_code == 202, started.text
        assert started.json() == {"sent_to": "k***@example.org", "expires_in": 600, "tries": 5}
        (mail,) = await smtp.wait_for(1)
        assert mail["To"] == "kb1abc@example.org"  # the callbook's address, never the one sent to us
        assert "W1XYZ" in mail["Subject"]
        code = code_in(mail)
        row = await api.state.db.fetchrow("SELECT * FROM signin_codes WHERE callsign = 'W1XYZ'")
        assert code.encode() not in bytes(row["secret_sha256"]) + bytes(row["salt"])  # hashed at rest
        verified = await client.post("/api/auth/email/verify", json={"callsign": "W1XYZ", "code": code})
        assert verified.status_code == 200, verified.text
        assert (verified.json()["callsign"], verified.json()["trust"]) == ("W1XYZ", "medium")
        me = await client.get("/api/me")  # the cookie the answer set
        assert (me.json()["callsign"], me.json()["trust"], me.json()["method"]) == ("W1XYZ", "medium", "email")
        again = await client.post("/api/auth/email/verify", json={"callsign": "W1XYZ", "code": code})
        assert again.status_code == 403 and "no pending sign-in" in again.json()["error"]
    user = await api.state.db.fetchrow("SELECT trust_level FROM users WHERE callsign = 'W1XYZ'")
    assert user["trust_level"] == 2


async def test_unknown_expired_licence_or_no_address_sends_nothing(api: Api, smtp: MailServer):
    async with anonymous(api) as client:
        unknown = await client.post("/api/auth/email", json={"callsign": "K9NOPE"})
        no_mail = await client.post("/api/auth/email", json={"callsign": "N0MAIL"})
        expired = await client.post("/api/auth/email", json={"callsign": "N0OLD"})
        bad = await client.post("/api/auth/email", json={"callsign": "not a call"})
    assert (unknown.status_code, no_mail.status_code, expired.status_code, bad.status_code) == (404, 404, 403, 400)
    assert "no e-mail address for K9NOPE" in unknown.json()["error"]
    assert "not active" in expired.json()["error"]
    assert bad.json()["field"] == "callsign"
    await trio.sleep(0.3)
    assert smtp.messages() == []


async def test_brute_force_stops_at_five_tries(api: Api, smtp: MailServer):
    async with anonymous(api) as client:
        assert (await client.post("/api/auth/email", json={"callsign": "W1XYZ"})).status_code == 202
        code = code_in((await smtp.wait_for(1))[0])
        wrong = f"{(int(code) + 1) % 10**6:06d}"
        answers = [await client.post("/api/auth/email/verify", json={"callsign": "W1XYZ", "code": wrong})
                   for _ in range(5)]
        assert [a.status_code for a in answers] == [403] * 5
        assert answers[0].json()["error"] == "wrong code; 4 tries left"
        assert answers[4].json()["error"] == "wrong code; 0 tries left"
        right = await client.post("/api/auth/email/verify", json={"callsign": "W1XYZ", "code": code})
        assert right.status_code == 429  # even the right code: the tries are spent
        assert "too many wrong tries" in right.json()["error"]
    assert await api.state.db.fetch("SELECT * FROM sessions") == []


async def test_parallel_guesses_cannot_exceed_the_tries(api: Api, smtp: MailServer):
    async with anonymous(api) as client:
        await client.post("/api/auth/email", json={"callsign": "W1XYZ"})
        code = code_in((await smtp.wait_for(1))[0])
        statuses: list[int] = []

        async def guess(n: int) -> None:
            response = await client.post("/api/auth/email/verify",
                                         json={"callsign": "W1XYZ", "code": f"{(int(code) + n) % 10**6:06d}"})
            statuses.append(response.status_code)

        async with trio.open_nursery() as nursery:
            for n in range(1, 9):
                nursery.start_soon(guess, n)
    assert sorted(statuses) == [403] * 5 + [429] * 3


async def test_a_code_expires_after_ten_minutes(api: Api, smtp: MailServer):
    async with anonymous(api) as client:
        await client.post("/api/auth/email", json={"callsign": "W1XYZ"})
        code = code_in((await smtp.wait_for(1))[0])
        row = await api.state.db.fetchrow("SELECT expires_at - created_at AS ttl FROM signin_codes")
        assert row["ttl"].total_seconds() == 600
        await api.state.db.execute("UPDATE signin_codes SET expires_at = now() - interval '1 second'")
        late = await client.post("/api/auth/email/verify", json={"callsign": "W1XYZ", "code": code})
    assert late.status_code == 403 and "expired" in late.json()["error"]


async def test_codes_are_rate_limited_per_callsign_and_sign_ins_per_ip(api: Api, smtp: MailServer):
    async with anonymous(api) as client:
        sent = [await client.post("/api/auth/email", json={"callsign": "W1XYZ"}) for _ in range(4)]
        assert [s.status_code for s in sent] == [202, 202, 202, 429]
        assert int(sent[3].headers["Retry-After"]) > 200  # one more code every 5 minutes
        await smtp.wait_for(3)
        others = [await client.post("/api/auth/email/verify", json={"callsign": "W1XYZ", "code": "000000"})
                  for _ in range(7)]  # 4 + 6 = 10 sign-in attempts a minute from this address ...
    assert others[-1].status_code == 429 and others[-1].headers["Retry-After"]
    assert "from this address" in others[-1].json()["error"]
    assert [o.status_code for o in others[:6]] == [403] * 5 + [429]  # the code's own 5 tries ran out first


async def test_a_mail_server_that_is_down_is_a_clear_502(api: Api, smtp: MailServer):
    smtp.stop()
    async with anonymous(api) as client:
        response = await client.post("/api/auth/email", json={"callsign": "W1XYZ"})
    assert response.status_code == 502
    assert "did not take the mail" in response.json()["error"]
    assert await api.state.db.fetch("SELECT * FROM signin_codes") == []


async def test_cross_site_sign_in_posts_are_refused(api: Api, smtp: MailServer):
    async with anonymous(api) as client:
        response = await client.post("/api/auth/email", json={"callsign": "W1XYZ"},
                                     headers={"Origin": "https://evil.example"})
    assert response.status_code == 403 and response.json()["field"] == "Origin"


async def test_the_page_learns_that_e_mail_codes_are_offered(api: Api):
    async with anonymous(api) as client:
        ways = (await client.get("/api/auth/ways")).json()
    assert ways == {"certificate": None, "email": True, "qrz": True}
