from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import trio

from hamsrv.db.database import Database
from hamsrv.firehose.hub import Hub
from hamsrv.http.api import create_app
from hamsrv.http.common import AppState
from hamsrv.http.listener import serve_public
from hamsrv.identity.tokens import add_user, issue_token
from hamsrv.ingest.jobs import JobRunner
from hamsrv.metrics import Registry


@dataclass
class Api:
    url: str
    state: AppState
    token: str  # W1AW's
    other_token: str  # K1ABC's

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)


@pytest.fixture
async def api(db: Database, nursery: trio.Nursery) -> AsyncIterator[Api]:
    """The quart app behind the real public listener (no firehose), with two users."""
    metrics = Registry()
    state = AppState(db=db, hub=Hub(metrics=metrics), metrics=metrics, imports=JobRunner(db))
    stop = trio.Event()
    port = await nursery.start(lambda task_status: serve_public(
        create_app(state), None, "127.0.0.1", 0, shutdown=stop, grace=1, task_status=task_status))
    w1aw = await add_user(db, "w1aw")
    k1abc = await add_user(db, "K1ABC")
    yield Api(f"http://127.0.0.1:{port}", state, await issue_token(db, w1aw["id"]),
              await issue_token(db, k1abc["id"]))
    stop.set()
