from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from hamsrv.db.database import Database
from tests.api import Api, running_api


@pytest.fixture
async def api(db: Database, nursery: trio.Nursery) -> AsyncIterator[Api]:
    """The quart app behind the real public listener, with users W1AW and K1ABC."""
    async with running_api(db, nursery) as served:
        yield served
