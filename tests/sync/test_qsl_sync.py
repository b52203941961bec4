"""LoTW and eQSL syncs against local servers that behave like them, fed with the real LoTW reports:
matching into a real PostgreSQL log, resuming, every failure in words, one user never blocking another."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import trio

from hamsrv.db import qsos
from hamsrv.db.database import Database, Row
from hamsrv.identity.tokens import add_user
from hamsrv.identity.vault import Vault
from hamsrv.ingest.adif import Record
from hamsrv.ingest.normalize import Reject, normalize
from hamsrv.sync.qsl import QslService
from hamsrv.sync.qsl_store import Login, save_login
from hamsrv.sync.scheduler import JobState, PgStateStore, Scheduler
from tests.sync.fake_services import Account, FakeServices, k9cts_inbox, start_fake_services
from tests.sync.samples import LOTW_2E0SQL, lotw_records

PASSWORD = "s3cret-Pa55"
QSL_FIELDS = ("QSL_RCVD", "QSLRDATE", "APP_LOTW_RXQSL")


async def log_qsos(db: Database, user: Row, records: list[Record], shift: timedelta = timedelta(0)) -> int:
    """The QSOs of these LoTW records in the user's log, not yet confirmed, `shift` later; returns how
    many were new to the log (the log keeps one QSO per call, band, mode and minute)."""
    logged = 0
    for record in records:
        fields = {k: v for k, v in record.fields.items() if k not in QSL_FIELDS}
        row = normalize(fields)
        assert not isinstance(row, Reject), row
        values = row._asdict()
        values["start_at"] = row.start_at + shift
        logged += await qsos.insert(db, user["id"], values) is not None
    return logged


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeServices:
    return await start_fake_services(nursery, FakeServices(delay=3.0))


@pytest.fixture
def service(db: Database, fake: FakeServices, tmp_path: Path) -> QslService:
    return QslService(db, Vault.load(None, tmp_path), lotw_url=fake.url, eqsl_url=fake.url, timeout=1.0)


async def linked_user(db: Database, service: QslService, call: str, kind: str, username: str,
                      password: str = PASSWORD) -> Row:
    user = await add_user(db, call)
    await save_login(db, service.vault, user, kind, Login(username, password))
    return user


async def run(service: QslService, user: Row, kind: str) -> JobState:
    return await Scheduler(PgStateStore(service.db)).run_once(service.job(user, kind))


async def test_lotw_sync_matches_the_real_report_and_resumes_from_lastqsl(
        db: Database, fake: FakeServices, service: QslService, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake.lotw["k9cts"] = Account(PASSWORD)
    user = await linked_user(db, service, "K9CTS", "lotw", "k9cts")
    records = lotw_records()
    # K9CTS uploaded one QSO twice (KP4JRS 2021-07-18 05:57:00 and 05:57:45, records 104 and 193) and
    # LoTW confirmed both: the log holds it once, so one of the two confirmations finds no QSO.
    assert await log_qsos(db, user, records[:200]) == 199
    await log_qsos(db, user, records[200:400], shift=timedelta(minutes=29))  # logged 29 minutes off: still them
    await log_qsos(db, user, records[400:410], shift=timedelta(minutes=31))  # 31 minutes off: not them

    state = await run(service, user, "lotw")
    assert state.status == "ok", state.error
    assert state.summary == "438 new LoTW confirmations, 399 matched to the log, 39 without a QSO yet"
    assert fake.requests[-1][1]["qso_qslsince"] == "1900-01-01"
    confirmed = await db.fetch("SELECT call, lotw_qsl_rcvd, lotw_qslrdate FROM qsos WHERE owner_id = %s"
                               " AND lotw_qsl_rcvd = 'Y'", [user["id"]])
    assert len(confirmed) == 399
    first = records[0].fields
    row = await db.fetchrow("SELECT lotw_qslrdate FROM qsos WHERE owner_id = %s AND call = %s AND start_at ="
                            " to_timestamp(%s, 'YYYYMMDDHH24MISS') AT TIME ZONE 'UTC'",
                            [user["id"], first["CALL"], first["QSO_DATE"] + first["TIME_ON"]])
    assert row is not None and row["lotw_qslrdate"] == date(2022, 6, 2)
    assert await db.fetchrow("SELECT cursor FROM sync_state WHERE name = 'lotw:K9CTS'") == {
        "cursor": "2022-06-02 23:31:22"}

    # the next run asks only for what is newer than the last report's APP_LoTW_LASTQSL
    again = await run(service, user, "lotw")
    assert fake.requests[-1][1]["qso_qslsince"] == "2022-06-02 23:31:22"
    assert again.summary == "0 new LoTW confirmations, 0 matched to the log, 39 without a QSO yet"

    # a QSO logged later still finds its confirmation, kept from before
    await log_qsos(db, user, records[410:411])
    later = await run(service, user, "lotw")
    assert later.summary == "0 new LoTW confirmations, 1 matched to the log, 38 without a QSO yet"
    notices = await db.fetch("SELECT message, new_count, matched FROM qsl_notifications WHERE user_id = %s",
                             [user["id"]])
    assert notices == [{"message": "438 new LoTW confirmations", "new_count": 438, "matched": 399}]
    assert PASSWORD not in caplog.text


async def test_a_big_report_with_lower_case_tags_is_read_whole(db: Database, fake: FakeServices,
                                                              service: QslService) -> None:
    fake.lotw["2e0sql"] = Account(PASSWORD, report=LOTW_2E0SQL)
    user = await linked_user(db, service, "2E0SQL", "lotw", "2e0sql")
    await log_qsos(db, user, lotw_records(LOTW_2E0SQL)[::2])
    state = await run(service, user, "lotw")
    assert state.status == "ok", state.error
    assert state.summary is not None and state.summary.startswith("1993 new LoTW confirmations")
    matched = await db.fetchrow("SELECT count(*) AS n FROM qsos WHERE owner_id = %s AND lotw_qsl_rcvd = 'Y'",
                                [user["id"]])
    assert matched is not None and matched["n"] == len(lotw_records(LOTW_2E0SQL)[::2])


async def test_eqsl_two_step_download_sets_eqsl_qsl_rcvd(db: Database, fake: FakeServices,
                                                         service: QslService) -> None:
    fake.eqsl["K9CTS"] = Account(PASSWORD, inbox=k9cts_inbox(40))
    user = await linked_user(db, service, "K9CTS", "eqsl", "K9CTS")
    await log_qsos(db, user, lotw_records()[:35])
    state = await run(service, user, "eqsl")
    assert state.status == "ok", state.error
    assert state.summary == "40 new eQSL confirmations, 35 matched to the log, 5 without a QSO yet"
    paths = [path for path, _ in fake.requests]
    assert paths[0] == "/qslcard/DownloadInBox.cfm" and paths[1].startswith("/downloadedfiles/")
    assert "RcvdSince" not in fake.requests[0][1]
    confirmed = await db.fetchrow("SELECT count(*) AS n, min(eqsl_qslrdate) AS day FROM qsos"
                                  " WHERE owner_id = %s AND eqsl_qsl_rcvd = 'Y'", [user["id"]])
    assert confirmed is not None and confirmed["n"] == 35 and confirmed["day"] is not None
    lotw_untouched = await db.fetchrow("SELECT count(*) AS n FROM qsos WHERE lotw_qsl_rcvd IS NOT NULL")
    assert lotw_untouched == {"n": 0}

    again = await run(service, user, "eqsl")
    since = fake.requests[-1][1]["RcvdSince"]
    assert len(since) == 12 and since.isdigit()
    assert again.summary == "0 new eQSL confirmations, 0 matched to the log, 5 without a QSO yet"


@pytest.mark.parametrize(("kind", "behaviour", "password", "words"), [
    ("lotw", "ok", "wrong", "LoTW refused the password (it sent its login page instead of a report)"),
    ("eqsl", "ok", "wrong", "eQSL refused the username or password"),
    ("lotw", "down", PASSWORD, "LoTW is down: HTTP 503"),
    ("eqsl", "down", PASSWORD, "eQSL is down: HTTP 503"),
    ("lotw", "slow", PASSWORD, "LoTW did not answer within 1 s"),
    ("eqsl", "slow", PASSWORD, "eQSL did not answer within 1 s"),
    ("lotw", "truncated", PASSWORD, "LoTW's report was cut off (no APP_LoTW_EOF at its end); nothing of it "
                                    "was used, the next sync asks again"),
    ("eqsl", "truncated", PASSWORD, "eQSL's ADIF file was cut off (its last record is not closed); nothing of "
                                    "it was used, the next sync asks again"),
])
async def test_each_failure_is_stored_in_plain_words_and_changes_nothing(
        db: Database, fake: FakeServices, service: QslService, kind: str, behaviour: str, password: str,
        words: str) -> None:
    accounts = fake.lotw if kind == "lotw" else fake.eqsl
    accounts["W1AW"] = Account(PASSWORD, behaviour=behaviour, inbox=k9cts_inbox(10))
    user = await linked_user(db, service, "W1AW", kind, "W1AW", password=password)
    with trio.fail_after(10):
        state = await run(service, user, kind)
    assert (state.status, state.error, state.failures) == ("error", words, 1)
    assert state.next_run_at is not None and state.last_run_at is not None
    assert (state.next_run_at - state.last_run_at) >= timedelta(minutes=4)  # backoff, not a hammering retry
    assert await db.fetchrow("SELECT count(*) AS n FROM qsl_confirmations") == {"n": 0}
    row = await db.fetchrow("SELECT cursor FROM sync_state WHERE name = %s", [f"{kind}:W1AW"])
    assert row == {"cursor": None}


@pytest.mark.parametrize(("kind", "page", "words"), [
    ("lotw", b"<html><head><title>LoTW</title></head><body>LoTW is down for maintenance</body></html>",
     "LoTW is down for maintenance"),
    ("eqsl", b'<HTML><BODY><A HREF="http://elsewhere.example/downloadedfiles/x.adi">.ADI file</A></BODY></HTML>',
     "eQSL pointed to a file on another site; it was not fetched"),
    ("eqsl", b'<HTML><BODY><A HREF="../downloadedfiles/gone.adi">.ADI file</A></BODY></HTML>',
     "eQSL is down: HTTP 404"),
])
async def test_odd_pages_are_told_in_words(db: Database, fake: FakeServices, service: QslService, kind: str,
                                           page: bytes, words: str) -> None:
    (fake.lotw if kind == "lotw" else fake.eqsl)["W1AW"] = Account(PASSWORD, page=page)
    user = await linked_user(db, service, "W1AW", kind, "W1AW")
    state = await run(service, user, kind)
    assert (state.status, state.error) == ("error", words)
    assert all(not path.startswith("http") for path, _ in fake.requests)


async def test_an_empty_result_is_a_success(db: Database, fake: FakeServices, service: QslService) -> None:
    fake.lotw["W1AW"] = Account(PASSWORD, behaviour="empty")
    fake.eqsl["W1AW"] = Account(PASSWORD, behaviour="empty")
    user = await linked_user(db, service, "W1AW", "lotw", "W1AW")
    await save_login(db, service.vault, user, "eqsl", Login("W1AW", PASSWORD))
    for kind, name in (("lotw", "LoTW"), ("eqsl", "eQSL")):
        state = await run(service, user, kind)
        assert state.status == "ok", state.error
        assert state.summary == f"0 new {name} confirmations, 0 matched to the log, 0 without a QSO yet"


async def test_a_users_wrong_password_never_blocks_other_users(
        db: Database, fake: FakeServices, service: QslService, nursery: trio.Nursery) -> None:
    """Three users on one scheduler (two runs at a time): a wrong password and a stalling server fail
    only their own users' syncs, in words; the good user's sync completes meanwhile."""
    fake.lotw["wrongpw"] = Account("the-real-one")
    fake.lotw["staller"] = Account(PASSWORD, behaviour="slow")
    fake.lotw["k9cts"] = Account(PASSWORD)
    users = {}
    for call, username in (("N1BAD", "wrongpw"), ("N1SLO", "staller"), ("K9CTS", "k9cts")):
        users[call] = await linked_user(db, service, call, "lotw", username)
    await log_qsos(db, users["K9CTS"], lotw_records()[:10])
    scheduler = Scheduler(PgStateStore(db))
    service.scheduler = scheduler
    assert await service.schedule_all() == 3
    await nursery.start(scheduler.run)
    with trio.fail_after(20):
        while {s.name: s.status for s in scheduler.states.values()} != {
                "lotw:N1BAD": "error", "lotw:N1SLO": "error", "lotw:K9CTS": "ok"}:
            await trio.sleep(0.05)
    statuses = {call: await service.status(user) for call, user in users.items()}
    bad, slow, good = (next(s for s in statuses[c]["services"] if s["service"] == "lotw")
                       for c in ("N1BAD", "N1SLO", "K9CTS"))
    assert bad["error"] == "LoTW refused the password (it sent its login page instead of a report)"
    assert slow["error"] == "LoTW did not answer within 1 s"
    assert good["error"] is None and good["last_success"] is not None
    assert good["summary"] == "438 new LoTW confirmations, 10 matched to the log, 428 without a QSO yet"
    assert good["last_run"] == {"new": 438, "matched": 10, "unmatched": 428}
    assert bad["last_success"] is None and bad["failures"] == 1
    assert statuses["N1BAD"]["notifications"] == [] and len(statuses["K9CTS"]["notifications"]) == 1


@pytest.fixture
async def served(db: Database, nursery: trio.Nursery, service: QslService) -> AsyncIterator[Any]:
    """The API with the QSL service on a running scheduler."""
    from tests.api import running_api

    scheduler = Scheduler(PgStateStore(db))
    service.scheduler = scheduler
    await nursery.start(scheduler.run)
    async with running_api(db, nursery, qsl=service) as api:
        yield api


async def test_linking_over_the_api_syncs_at_once_and_status_shows_it(
        served: Any, db: Database, fake: FakeServices) -> None:
    fake.lotw["w1aw"] = Account(PASSWORD)
    async with served.client(served.token) as client:
        r = await client.put("/api/qsl/credentials/lotw", json={"username": "w1aw", "password": PASSWORD})
        assert r.status_code == 204
        with trio.fail_after(20):
            while True:
                body = (await client.get("/api/qsl/status")).json()
                lotw = next(s for s in body["services"] if s["service"] == "lotw")
                if lotw["status"] == "ok":
                    break
                await trio.sleep(0.05)
        assert PASSWORD not in str(body) and "w1aw" not in str(body).lower().replace("lotw:w1aw", "")
        assert lotw["linked"] and lotw["confirmations"] == 438 and lotw["unmatched"] == 438
        eqsl = next(s for s in body["services"] if s["service"] == "eqsl")
        assert eqsl == {**eqsl, "linked": False, "status": "not linked", "error": None}
        assert body["notifications"][0]["message"] == "438 new LoTW confirmations"

        unmatched = (await client.get("/api/qsl/unmatched", params={"service": "lotw", "limit": 5})).json()
        assert len(unmatched["unmatched"]) == 5 and unmatched["unmatched"][0]["service"] == "lotw"
        assert (await client.get("/api/qsl/unmatched", params={"service": "qrz"})).json()["field"] == "service"
        assert (await client.post("/api/qsl/notifications/seen")).json() == {"seen": 1}
        assert (await client.get("/api/qsl/status")).json()["notifications"] == []

        # a changed password that LoTW refuses reaches the user in words
        r = await client.put("/api/qsl/credentials/lotw", json={"username": "w1aw", "password": "changed"})
        assert r.status_code == 204
        with trio.fail_after(20):
            while True:
                lotw = next(s for s in (await client.get("/api/qsl/status")).json()["services"]
                            if s["service"] == "lotw")
                if lotw["error"]:
                    break
                await trio.sleep(0.05)
        assert lotw["error"].startswith("LoTW refused the password") and lotw["last_success"] is not None

        assert (await client.delete("/api/qsl/credentials/lotw")).status_code == 204
        lotw = next(s for s in (await client.get("/api/qsl/status")).json()["services"] if s["service"] == "lotw")
        assert lotw["linked"] is False and lotw["confirmations"] == 438  # the confirmations stay
    async with served.client(served.other_token) as other:  # another user sees none of it
        theirs = (await other.get("/api/qsl/status")).json()
        assert all(s["confirmations"] == 0 for s in theirs["services"]) and theirs["notifications"] == []
