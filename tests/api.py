"""The quart app behind the real public listener (no firehose), with two users, for API tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
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
    port: int
    state: AppState
    token: str  # W1AW's
    other_token: str  # K1ABC's

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        """A client sending `token` (none: anonymous)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)


@asynccontextmanager
async def running_api(db: Database, nursery: trio.Nursery, *, imports: JobRunner | None = None,
                      **state_options: Any) -> AsyncIterator[Api]:
    """Serve the app until the block ends; `imports` (a JobRunner) is started when given."""
    metrics = Registry()
    state = AppState(db=db, hub=Hub(metrics=metrics), metrics=metrics, imports=imports or JobRunner(db),
                     **state_options)
    if imports is not None:
        await nursery.start(imports.run)
    stop = trio.Event()
    port = await nursery.start(lambda task_status: serve_public(
        create_app(state), None, "127.0.0.1", 0, shutdown=stop, grace=1, task_status=task_status))
    w1aw, k1abc = await add_user(db, "w1aw"), await add_user(db, "K1ABC")
    yield Api(f"http://127.0.0.1:{port}", port, state, await issue_token(db, w1aw["id"]),
              await issue_token(db, k1abc["id"]))
    stop.set()
