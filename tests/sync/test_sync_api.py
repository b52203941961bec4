"""GET /api/sync and /metrics show each job's health as the scheduler stored it in PostgreSQL."""

from __future__ import annotations

import trio

from hamsrv.db.database import Database
from hamsrv.identity.tokens import get_user
from hamsrv.sync.scheduler import Job, PgStateStore, Scheduler, SyncError
from tests.api import Api


async def fail_503(progress) -> str:
    raise SyncError("FCC answered 503")


async def succeed(progress) -> str:
    return "17 records"


async def test_api_sync_lists_jobs_with_their_health(api: Api, db: Database, nursery: trio.Nursery):
    w1aw = await get_user(db, "W1AW")
    scheduler = Scheduler(PgStateStore(db), metrics=api.state.metrics, node="node-a")
    await scheduler.run_once(Job("fcc", fail_503, interval=86400, retry_min=60, jitter=0))
    await scheduler.run_once(Job("noaa", succeed, interval=3600, jitter=0))
    await scheduler.run_once(Job("lotw:W1AW", succeed, interval=3600, owner_id=w1aw["id"]))  # type: ignore[index]

    async with api.client() as anonymous:
        body = (await anonymous.get("/api/sync")).json()
    by_name = {job["name"]: job for job in body["syncs"]}
    assert set(by_name) == {"fcc", "noaa"}  # a user's own sync is not shown to others
    assert by_name["fcc"]["status"] == "error" and by_name["fcc"]["error"] == "FCC answered 503"
    assert by_name["fcc"]["failures"] == 1 and by_name["fcc"]["healthy"] is False
    assert by_name["fcc"]["last_ok_at"] is None and by_name["fcc"]["next_run_at"].endswith("Z")
    assert by_name["noaa"]["status"] == "ok" and by_name["noaa"]["summary"] == "17 records"
    assert by_name["noaa"]["healthy"] is True and by_name["noaa"]["node"] == "node-a"

    async with api.client(api.token) as owner, api.client(api.other_token) as other:
        mine = {job["name"] for job in (await owner.get("/api/sync")).json()["syncs"]}
        theirs = {job["name"] for job in (await other.get("/api/sync")).json()["syncs"]}
    assert mine == {"fcc", "noaa", "lotw:W1AW"}
    assert theirs == {"fcc", "noaa"}

    async with api.client() as anonymous:
        metrics = (await anonymous.get("/metrics")).text
    assert 'hamsrv_sync_ok{job="fcc"} 0' in metrics
    assert 'hamsrv_sync_ok{job="noaa"} 1' in metrics
    assert 'hamsrv_sync_failures{job="fcc"} 1' in metrics
    assert 'hamsrv_sync_last_success_timestamp_seconds{job="noaa"}' in metrics
    assert 'hamsrv_sync_last_success_timestamp_seconds{job="fcc"}' not in metrics
