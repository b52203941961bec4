from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from hamsrv.db.database import Database
from hamsrv.identity.vault import Vault
from hamsrv.sync.qsl import QslService
from tests.api import Api, running_api
from tests.sync.powerdns import PowerDns

ZONE = "hams.example."


@pytest.fixture
async def api(db: Database, nursery: trio.Nursery) -> AsyncIterator[Api]:
    """The quart app behind the real public listener, with users W1AW and K1ABC."""
    async with running_api(db, nursery) as served:
        yield served


@pytest.fixture
async def powerdns(tmp_path) -> AsyncIterator[PowerDns]:
    """A running pdns_server with the zone hams.example. (no records but SOA and NS)."""
    server = PowerDns(tmp_path / "pdns")
    server.directory.mkdir()
    server.start()
    try:
        await server.wait_ready()
        await server.create_zone(ZONE)
        yield server
    finally:
        server.stop()


@pytest.fixture
async def qsl_api(db: Database, nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[Api]:
    """The app with a QSL service whose key file lives in this test's data dir; users W1AW and K1ABC."""
    async with running_api(db, nursery, qsl=QslService(db, Vault.load(None, tmp_path))) as served:
        yield served
