"""The syncs inside the whole app: the root nursery starts them, GET /api/sync, /metrics, /healthz and
/api/solar show them, and /api/propagation takes the stored solar data."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest
import trio

from hamsrv import config as config_mod
from tests.sync.authority import Authority
from tests.sync.test_noaa import swpc_with_real_files


@pytest.fixture
async def swpc(nursery: trio.Nursery) -> Authority:
    authority: Authority = await nursery.start(Authority().run)
    swpc_with_real_files(authority)
    return authority


@pytest.fixture
def app_config(app_config: config_mod.Config, swpc: Authority) -> config_mod.Config:
    return replace(app_config, syncs="noaa,fcc", noaa_url=swpc.url, fcc_url=swpc.url + "/fcc")


async def test_syncs_run_in_the_app_and_show_their_health(running: Any):
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.http_port}") as client:
        with trio.fail_after(30):
            while True:
                syncs = {s["name"]: s for s in (await client.get("/api/sync")).json()["syncs"]}
                if {"noaa", "fcc"} <= syncs.keys() and all(s["status"] in ("ok", "error") for s in syncs.values()):
                    break
                await trio.sleep(0.1)
        assert syncs["noaa"]["status"] == "ok" and syncs["noaa"]["summary"] == "kp 2, flux 222, ssn 196.5"
        assert syncs["fcc"]["status"] == "error"
        assert syncs["fcc"]["error"].startswith("FCC answered 404 Not Found for /fcc/complete/l_amat.zip")
        metrics = (await client.get("/metrics")).text
        assert 'hamsrv_sync_ok{job="noaa"} 1' in metrics and 'hamsrv_sync_ok{job="fcc"} 0' in metrics
        health = (await client.get("/healthz")).json()
        assert health["syncs"]["fcc"]["status"] == "error" and health["syncs"]["noaa"]["error"] is None
        assert (await client.get("/api/solar")).json()["kp"]["value"] == 2.0
        prop = (await client.get("/api/propagation", params={"from": "FN31", "to": "JO62"})).json()
        assert prop["inputs"]["source"] == "noaa" and prop["inputs"]["flux"] == 222.0
