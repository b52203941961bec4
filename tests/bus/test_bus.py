"""The user bus (`/websocket`) through the whole app: real listener, PostgreSQL NOTIFY, import jobs,
QSL syncs against local LoTW/eQSL servers, and telnet users on the real cluster port."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, DisconnectionTimeout, open_websocket_url

from hamsrv.bus import wire
from hamsrv.bus.service import PER_USER
from hamsrv.db.database import Database
from hamsrv.http.listener import WRITE_TIMEOUT
from hamsrv.identity.sessions import set_trust, start_session
from hamsrv.identity.tokens import add_user, issue_token
from hamsrv.identity.vault import Vault
from hamsrv.sync.qsl import QslService
from hamsrv.sync.qsl_store import Login, save_login
from hamsrv.sync.scheduler import PgStateStore, Scheduler
from tests import testdata
from tests.bus.client import SAFETY, BusPage, bus_page
from tests.firehose.telnet import Telnet
from tests.sync.fake_services import Account, FakeServices, start_fake_services
from tests.sync.samples import lotw_records
from tests.sync.test_qsl_sync import PASSWORD, log_qsos

PROMPT = b"hamsrv >\r\n"


@pytest.fixture
async def tokens(running: Any, db: Database) -> dict[str, str]:
    """API tokens of W1AW and K1ABC (trust medium, the default for accounts)."""
    return {call: await issue_token(db, (await add_user(db, call))["id"]) for call in ("W1AW", "K1ABC")}


async def test_import_progress_and_result_reach_the_owners_pages_only(running: Any, tokens: dict[str, str]) -> None:
    data = (testdata.TESTDATA / "adif" / "wsjtx_300rc1_m7pxz.adi").read_bytes()
    base = f"http://127.0.0.1:{running.http_port}"
    async with bus_page(running.http_port, tokens["W1AW"]) as mine, \
            bus_page(running.http_port, tokens["K1ABC"]) as other, \
            httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {tokens['W1AW']}"}) as client:
        assert (mine.hello["call"], mine.hello["trust"]) == ("W1AW", "medium")
        job_id = (await client.post("/api/imports", content=data)).json()["id"]
        events = [await mine.next("import")]
        while events[-1]["status"] not in ("done", "failed"):
            events.append(await mine.next("import"))
        await other.nothing_of("import")
    assert {e["id"] for e in events} == {job_id}
    assert events[0]["status"] == "running"
    assert (events[-1]["status"], events[-1]["records_read"], events[-1]["inserted"]) == ("done", 1700, 1691)


async def test_cluster_announce_and_talk_reach_the_page(running: Any, tokens: dict[str, str]) -> None:
    async with bus_page(running.http_port, tokens["W1AW"]) as w1aw, \
            bus_page(running.http_port, tokens["K1ABC"]) as k1abc:
        telnet = await Telnet.login(running.cluster_port, "G4ABC", PROMPT)
        await telnet.command("announce full 6m open to NA")
        await telnet.command("talk W1AW are you QRV on 50.313?")  # W1AW is on the bus, not on the port
        for page in (w1aw, k1abc):
            announce = await page.next("announce")
            assert {k: announce[k] for k in ("from", "to", "text")} == {
                "from": "G4ABC", "to": "ALL", "text": "6m open to NA"}
        talk = await w1aw.next("talk")
        assert {k: talk[k] for k in ("from", "to", "text")} == {
            "from": "G4ABC", "to": "W1AW", "text": "are you QRV on 50.313?"}
        await k1abc.nothing_of("talk")
        # a call with neither a cluster login nor an account is still not visible, as before
        assert b"callsign N0CALL not visible on the cluster" in await telnet.command("talk N0CALL hello")
        await telnet.stream.aclose()


async def test_page_announce_and_talk_reach_telnet_users(running: Any, tokens: dict[str, str]) -> None:
    telnet = await Telnet.login(running.cluster_port, "G4ABC", PROMPT)
    async with bus_page(running.http_port, tokens["W1AW"]) as page:
        await page.send(type="announce", text="QRV 6m \x1b[31mFN31\x07", full=True, id="a1")
        # the page sees the board as telnet users do; the board posts before the answer is queued
        echoed = await page.next("announce")
        assert (echoed["from"], echoed["text"]) == ("W1AW", "QRV 6m [31mFN31")
        assert await page.next("sent") == {"type": "sent", "id": "a1"}
        assert await telnet.line_with(b"W1AW") == b"To ALL de W1AW: QRV 6m [31mFN31"  # control characters dropped

        await page.send(type="talk", to="g4abc", text="tnx for the QSO", id="t1")
        assert await page.next("sent") == {"type": "sent", "id": "t1"}
        assert await telnet.line_with(b"W1AW") == b"G4ABC de W1AW: tnx for the QSO"

        await page.send(type="talk", to="N0CALL", text="anyone?", id="t2")
        assert await page.next("error") == {"type": "error", "id": "t2",
                                            "error": "callsign N0CALL not visible on the cluster"}
        await page.send(type="announce", text="QRV 6m \x1b[31mFN31\x07", full=True, id="a2")
        assert (await page.next("error"))["error"] == "Sorry, this is a duplicate"
    await telnet.stream.aclose()


async def test_refusals(running: Any, db: Database, tokens: dict[str, str]) -> None:
    port = running.http_port
    for query in ("", "?token=hamsrv_nope"):
        with pytest.raises(ConnectionRejected) as refused:
            async with open_websocket_url(f"ws://127.0.0.1:{port}/websocket{query}"):
                pass
        assert refused.value.status_code == 401
        assert json.loads(refused.value.body or b"{}")["error"].startswith("sign in, or send a valid token")

    async with bus_page(port, tokens["W1AW"]) as page:
        await page.send(type="shout", text="x", id="s")
        assert await page.next("error") == {"type": "error", "id": "s", "error": "type must be announce or talk"}
        await page.send(type="announce", text="x" * 201, id="long")
        assert (await page.next("error"))["error"] == "text is too long: at most 200 characters"
        for n in range(5):  # the cluster port's 5 posts a minute, then a refusal with the wait
            await page.send(type="announce", text=f"test number {n} " + "abcdefghij"[n] * 10)
            await page.next("sent")
        await page.send(type="announce", text="one more", id="6")
        assert (await page.next("error"))["error"].startswith("too many announcements: at most 5 a minute")

    async with bus_page(port, tokens["W1AW"]) as page:  # too large a message: closed with 1009
        await page.ws.send_message("x" * (wire.MAX_FRAME + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await page.next("never")
        assert closed.value.reason.code == 1009

    async with bus_page(port, tokens["W1AW"]) as page:  # too many messages at once: closed with 1008
        for _ in range(int(wire.FRAME_RATE.burst) + 1):
            await page.ws.send_message("{}")
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await page.next("never")
        assert closed.value.reason.code == 1008

    # a QRZ sign-in (trust low) hears the bus but may not announce under its call
    low = await start_session(db, (await add_user(db, "N1LOW"))["id"], "qrz", None, timedelta(hours=1))
    async with bus_page(port, low) as page:
        assert page.hello["trust"] == "low"
        await page.send(type="announce", text="hello", id="l")
        assert (await page.next("error"))["error"] == "sending an announce needs trust 'medium'; this sign-in has 'low'"

    await set_trust(db, "K1ABC", 0)  # trust none (the operator's override): no bus at all
    with pytest.raises(ConnectionRejected) as refused:
        async with bus_page(port, tokens["K1ABC"]):
            pass
    assert refused.value.status_code == 403

    async with trio.open_nursery() as nursery:  # connections per user
        opened: list[BusPage] = []
        for _ in range(PER_USER):
            page = await nursery.start(_hold_open, port, tokens["W1AW"])
            opened.append(page)
        with pytest.raises(ConnectionRejected) as refused:
            async with bus_page(port, tokens["W1AW"]):
                pass
        assert refused.value.status_code == 429
        nursery.cancel_scope.cancel()


async def _hold_open(port: int, token: str, task_status: trio.TaskStatus[BusPage] = trio.TASK_STATUS_IGNORED) -> None:
    async with bus_page(port, token) as page:
        task_status.started(page)
        await trio.sleep_forever()


async def test_a_page_that_does_not_read_is_closed_not_buffered(running: Any, db: Database,
                                                                tokens: dict[str, str]) -> None:
    base = f"http://127.0.0.1:{running.http_port}"
    # message_queue_size=0: after its hello the client reads nothing, so its socket buffers fill up,
    # then the server's queue for it (QUEUE messages): the server closes it instead of buffering more
    try:
        async with bus_page(running.http_port, tokens["W1AW"], message_queue_size=0, disconnect_timeout=1):
            await _fill_until_closed(db, base)
    except* DisconnectionTimeout:  # the client's own close handshake cannot get through either
        pass


async def _fill_until_closed(db: Database, base: str) -> None:
    user = await db.fetchrow("SELECT id FROM users WHERE callsign = 'W1AW'")
    assert user is not None
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.get("/healthz")).json()["bus"] == {"connections": 1}
        await db.execute(
            "SELECT pg_notify(%s, json_build_object('u', %s::int, 'm', json_build_object("
            " 'type', 'notice', 'n', n, 'pad', repeat('x', 7000)))::text) FROM generate_series(1, %s) AS n",
            [wire.CHANNEL, user["id"], 3000])  # 21 MB: more than the socket buffers and the queue hold
        with trio.fail_after(WRITE_TIMEOUT + SAFETY):  # the stuck write ends after WRITE_TIMEOUT
            while (await client.get("/healthz")).json()["bus"]["connections"]:
                await trio.sleep(0.1)
        assert "hamsrv_bus_too_slow_total 1" in (await client.get("/metrics")).text


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeServices:
    return await start_fake_services(nursery, FakeServices(delay=3.0))


async def test_new_qsl_confirmations_and_sync_failures_reach_the_page(
        running: Any, db: Database, tokens: dict[str, str], fake: FakeServices, tmp_path: Path) -> None:
    service = QslService(db, Vault.load(None, tmp_path), lotw_url=fake.url, eqsl_url=fake.url, timeout=1.0)
    user = await db.fetchrow("SELECT * FROM users WHERE callsign = 'W1AW'")
    assert user is not None
    fake.lotw["w1aw"] = Account(PASSWORD)
    await save_login(db, service.vault, user, "lotw", Login("w1aw", PASSWORD))
    await log_qsos(db, user, lotw_records()[:20])
    scheduler = Scheduler(PgStateStore(db))
    async with bus_page(running.http_port, tokens["W1AW"]) as page:
        assert (await scheduler.run_once(service.job(user, "lotw"))).status == "ok"
        qsl = await page.next("qsl")
        assert (qsl["service"], qsl["matched"], qsl["text"]) == ("lotw", 20, f"{qsl['new']} new LoTW confirmations")
        await save_login(db, service.vault, user, "lotw", Login("w1aw", "wrong password"))
        assert (await scheduler.run_once(service.job(user, "lotw"))).status == "error"
        failed = await page.next("sync_failed")
        assert (failed["service"], failed["job"]) == ("lotw", "lotw:W1AW")
        assert "password" in failed["error"]
