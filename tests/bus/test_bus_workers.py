"""The user bus across `hamsrv serve --workers 2`: events born on one worker reach pages on the other,
and a page on a follower announces to telnet users of the primary's cluster port (PostgreSQL NOTIFY)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import trio

from hamsrv import config as config_mod
from hamsrv.workers import supervise
from tests import testdata
from tests.bus.client import BusPage, bus_page
from tests.bus.test_bus import PROMPT
from tests.firehose.telnet import Telnet
from tests.test_workers import health, per_worker, two_workers


async def bus_counts(base: str) -> dict[int, int]:
    return await per_worker(base, lambda body: body["bus"]["connections"])


async def hold_page(port: int, token: str, *, task_status: trio.TaskStatus[tuple[BusPage, trio.CancelScope]]
                    = trio.TASK_STATUS_IGNORED) -> None:
    with trio.CancelScope() as scope:
        async with bus_page(port, token) as page:
            task_status.started((page, scope))
            await trio.sleep_forever()


async def test_bus_events_cross_workers(app_config: config_mod.Config, db_url: str, tmp_path: Path) -> None:
    config, token, cluster_port = await two_workers(app_config, db_url, tmp_path)
    async with trio.open_nursery() as supervisor:
        port = await supervisor.start(supervise, config)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as client:
            with trio.fail_after(20):
                while not all(w["up"] for w in (await health(client))["workers"]["all"]):
                    await trio.sleep(0.1)
        pages: dict[int, BusPage] = {}  # one page on each worker
        async with trio.open_nursery() as held:
            with trio.fail_after(60):
                while len(pages) < 2:  # the kernel spreads new connections (SO_REUSEPORT): open until both have one
                    before = await bus_counts(base)
                    page, scope = await held.start(hold_page, port, token)
                    after = await bus_counts(base)
                    worker = next(w for w in after if after[w] > before.get(w, 0))
                    if worker in pages:
                        scope.cancel()
                    else:
                        pages[worker] = page
            await _exercise(base, token, cluster_port, pages)
            held.cancel_scope.cancel()
        os.kill(os.getpid(), signal.SIGTERM)  # the supervisor's signal handler drains the workers


async def _exercise(base: str, token: str, cluster_port: int, pages: dict[int, BusPage]) -> None:
    # an import runs on whichever worker's runner claims it: both pages hear its result
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
        data = (testdata.TESTDATA / "adif" / "qlog_all_fields_example.adi").read_bytes()
        job_id = (await client.post("/api/imports", content=data)).json()["id"]
    for page in pages.values():
        while (event := await page.next("import"))["status"] != "done":
            assert event["id"] == job_id
    # the primary's cluster port: a telnet announcement reaches both pages, and the follower's page
    # announces to the telnet user (its answer comes back to it across workers)
    telnet = await Telnet.login(cluster_port, "G4ABC", PROMPT)
    await telnet.command("announce full 2m tropo to EA")
    for page in pages.values():
        assert (await page.next("announce"))["text"] == "2m tropo to EA"
    await pages[1].send(type="announce", text="hello from a follower", id="f")
    assert await pages[1].next("sent") == {"type": "sent", "id": "f"}
    assert await telnet.line_with(b"W1AW") == b"To LOCAL de W1AW: hello from a follower"
    await telnet.stream.aclose()
