"""Rate limits (token buckets per IP and per user, 429 + Retry-After) and Idempotency-Key on POSTs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from hamsrv.db.database import Database
from hamsrv.identity.policy import Policy
from hamsrv.identity.ratelimit import Buckets, Rate, retry_after
from tests.api import Api, running_api
from tests.testdata import TESTDATA

QSO = {"call": "IP0TRC", "qso_date": "20240101", "time_on": "1200", "band": "20m", "mode": "CW"}


def from_address(api: Api, address: str, token: str | None = None) -> httpx.AsyncClient:
    """A client whose connections come from `address` (any 127.x.y.z reaches the loopback server)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=api.url, headers=headers, timeout=30,
                             transport=httpx.AsyncHTTPTransport(local_address=address))


# ---- the buckets themselves
def test_bucket_allows_a_burst_then_the_rate() -> None:
    buckets = Buckets(Rate(2.0, 5))
    assert [buckets.take("a", 0.0) for _ in range(5)] == [0.0] * 5
    assert buckets.take("a", 0.0) == pytest.approx(0.5)
    assert buckets.take("b", 0.0) == 0.0  # another key has its own bucket
    assert buckets.take("a", 0.5) == 0.0 and buckets.take("a", 0.5) > 0
    assert buckets.take("a", 100.0) == 0.0  # refilled, but never above the burst
    assert [buckets.take("a", 100.0) for _ in range(5)].count(0.0) == 4
    assert retry_after(0.01) == "1" and retry_after(2.2) == "3"


def test_buckets_forget_the_oldest_key_past_their_bound() -> None:
    buckets = Buckets(Rate(1.0, 1), max_keys=3)
    for key in "abcd":
        buckets.take(key, 0.0)
    assert len(buckets) == 3
    assert buckets.take("a", 0.0) == 0.0  # forgotten, so full again
    assert buckets.take("d", 0.0) > 0


@given(st.lists(st.floats(0, 5), max_size=200), st.floats(0.1, 20), st.integers(1, 20))
def test_never_more_than_the_burst_plus_the_rate(gaps: list[float], rate: float, burst: int) -> None:
    buckets, now, allowed = Buckets(Rate(rate, burst)), 0.0, 0
    for gap in gaps:
        now += gap
        allowed += buckets.take("k", now) == 0.0
    assert allowed <= burst + rate * now + 1e-6


# ---- over HTTP
@pytest.fixture
async def api(db: Database, nursery: trio.Nursery) -> AsyncIterator[Api]:
    async with running_api(db, nursery, identity=Policy(api_rate=5.0, signin_rate=10.0)) as served:
        yield served


async def test_a_login_storm_from_one_address_gets_429_while_others_are_served(api: Api):
    storm_statuses: list[int] = []
    async with from_address(api, "127.0.0.1") as attacker, from_address(api, "127.0.0.2") as neighbour, \
            from_address(api, "127.0.0.3", api.other_token) as user:
        async def storm() -> None:
            for n in range(40):
                response = await attacker.post("/api/auth/email/verify", json={"callsign": "W1AW", "code": f"{n:06d}"})
                storm_statuses.append(response.status_code)
                if response.status_code == 429:
                    assert int(response.headers["Retry-After"]) >= 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(storm)
            await trio.sleep(0.05)
            neighbour_signin = await neighbour.post("/api/auth/email/verify", json={"callsign": "K1ABC", "code": "1"})
            user_me = await user.get("/api/me")
    assert storm_statuses.count(429) >= 30 and set(storm_statuses) == {403, 429}
    assert neighbour_signin.status_code == 403  # an answer about the code, not a 429
    assert user_me.status_code == 200 and user_me.json()["callsign"] == "K1ABC"


async def test_api_requests_are_limited_per_address(db: Database, nursery: trio.Nursery):
    async with running_api(db, nursery, identity=Policy(api_rate=1.0)) as api, \
            from_address(api, "127.0.0.4", api.token) as busy, \
            from_address(api, "127.0.0.5", api.other_token) as calm:
        responses = [await busy.get("/api/spots") for _ in range(40)]  # an anonymous route
        assert (await calm.get("/api/qsos")).status_code == 200
    statuses = [r.status_code for r in responses]
    assert statuses[:10] == [200] * 10 and statuses.count(429) >= 15  # a burst of 10 s worth, then 1 a second
    refused = next(r for r in responses if r.status_code == 429)
    assert "per IP address" in refused.json()["error"] and refused.headers["Retry-After"] == "1"


async def test_api_requests_are_limited_per_user_across_addresses(db: Database, nursery: trio.Nursery):
    statuses = []
    async with running_api(db, nursery, identity=Policy(api_rate=1.0)) as api:
        for n in range(10, 22):  # 12 addresses x 6 requests: each address stays under its own limit (10)
            async with from_address(api, f"127.0.0.{n}", api.token) as client:
                statuses += [(await client.get("/api/qsos")) for _ in range(6)]
        async with from_address(api, "127.0.0.30", api.other_token) as other:
            assert (await other.get("/api/qsos")).status_code == 200
    assert [r.status_code for r in statuses[:10]] == [200] * 10
    refused = [r for r in statuses if r.status_code == 429]
    assert len(refused) >= 30 and all("per user" in r.json()["error"] for r in refused)


# ---- Idempotency-Key
async def test_a_retried_post_gets_the_first_answer(api: Api):
    async with api.client(api.token) as client:
        first = await client.post("/api/qsos", json=QSO, headers={"Idempotency-Key": "qso-1"})
        retry = await client.post("/api/qsos", json=QSO, headers={"Idempotency-Key": "qso-1"})
        plain = await client.post("/api/qsos", json=QSO)
        other_body = await client.post("/api/qsos", json={**QSO, "call": "K2X"}, headers={"Idempotency-Key": "qso-1"})
        other_path = await client.post("/api/spots", json={"dx": "IP0TRC", "freq": 14025},
                                       headers={"Idempotency-Key": "qso-1"})
    assert (first.status_code, retry.status_code, plain.status_code) == (201, 201, 409)
    assert retry.json() == first.json() and retry.headers["Location"] == first.headers["Location"]
    assert retry.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert other_body.status_code == other_path.status_code == 422
    assert other_body.json()["field"] == "Idempotency-Key"
    rows = await api.state.db.fetch("SELECT id FROM qsos")
    assert len(rows) == 1
    async with api.client(api.other_token) as client:  # keys belong to one user
        theirs = await client.post("/api/qsos", json=QSO, headers={"Idempotency-Key": "qso-1"})
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]


async def test_a_replayed_spot_is_the_first_answer_not_a_second_spot(api: Api):
    spot = {"dx": "IP0TRC", "freq": 14025.0, "comment": "CW 20 dB"}
    async with api.client(api.token) as client:
        first = await client.post("/api/spots", json=spot, headers={"Idempotency-Key": "spot-7"})
        retry = await client.post("/api/spots", json=spot, headers={"Idempotency-Key": "spot-7"})
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.content == first.content and retry.headers["Idempotent-Replayed"] == "true"
    assert len(list(api.state.hub.ring.newest_first())) == 1


async def test_keys_are_forgotten_after_a_day(api: Api):
    async with api.client(api.token) as client:
        assert (await client.post("/api/qsos", json=QSO, headers={"Idempotency-Key": "k"})).status_code == 201
        await api.state.db.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
        later = await client.post("/api/qsos", json=QSO, headers={"Idempotency-Key": "k"})
    assert later.status_code == 409  # run again: this time the QSO exists


async def test_a_retry_while_the_upload_still_runs_is_409_then_the_first_answer(api: Api):
    data = (TESTDATA / "adif" / "adifmaster_ft8.adi").read_bytes()
    release = trio.Event()

    async def slow_body():
        yield data[:1000]
        await release.wait()
        yield data[1000:]

    results: dict[str, httpx.Response] = {}
    async with api.client(api.token) as client, api.client(api.token) as retrying:
        async def upload() -> None:
            results["first"] = await client.post("/api/imports", content=slow_body(),
                                                 headers={"Idempotency-Key": "up-1"})

        async with trio.open_nursery() as nursery:
            nursery.start_soon(upload)
            with trio.fail_after(10):
                while not await api.state.db.fetch("SELECT 1 FROM idempotency_keys"):
                    await trio.sleep(0.01)
            busy = await retrying.post("/api/imports", content=data, headers={"Idempotency-Key": "up-1"})
            release.set()
        again = await retrying.post("/api/imports", content=data, headers={"Idempotency-Key": "up-1"})
        other = await retrying.post("/api/imports", content=data + data, headers={"Idempotency-Key": "up-1"})
    assert busy.status_code == 409 and "still being processed" in busy.json()["error"]
    assert results["first"].status_code == again.status_code == 202
    assert again.json()["id"] == results["first"].json()["id"]
    # a retried upload is read again and matched by its body (issue 14: another file got the first job)
    assert other.status_code == 422 and other.json()["field"] == "Idempotency-Key"
    assert len(await api.state.db.fetch("SELECT id FROM import_jobs")) == 1


async def test_a_failed_first_request_leaves_the_key_free(api: Api):
    async with api.client(api.token) as client:
        bad = await client.post("/api/qsos", json={"call": "W1AW"}, headers={"Idempotency-Key": "k2"})
        good = await client.post("/api/qsos", json=QSO, headers={"Idempotency-Key": "k2"})
    assert bad.status_code == 400 and good.status_code == 201


async def test_a_claim_abandoned_by_a_crash_frees_the_key_after_an_hour(api: Api):
    user = await api.state.db.fetchrow("SELECT id FROM users WHERE callsign = 'W1AW'")
    await api.state.db.execute("INSERT INTO idempotency_keys (user_id, key, fingerprint, created_at)"
                               " VALUES (%s, 'lost', '\\x00', now() - interval '2 hours'),"
                               " (%s, 'running', '\\x00', now())", [user["id"], user["id"]])
    async with api.client(api.token) as client:
        freed = await client.post("/api/qsos", json=QSO, headers={"Idempotency-Key": "lost"})
        busy = await client.post("/api/qsos", json={**QSO, "time_on": "1300"}, headers={"Idempotency-Key": "running"})
    assert freed.status_code == 201
    assert busy.status_code == 422  # another request's claim (its fingerprint differs), still recent
