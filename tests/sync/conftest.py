from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from hamsrv.db.database import Database
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
