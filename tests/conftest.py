"""Shared fixtures: a real PostgreSQL for the whole session (embedded via pgserver, or the server named
by HAMSRV_TEST_DATABASE_URL), a fresh migrated database per test, and the real hamsrv app."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio

from bench.peers.redis_server import RedisServer
from hamsrv import config as config_mod
from hamsrv.db.database import Database
from tests.testdata import TESTDATA


def pytest_configure(config: pytest.Config) -> None:
    if not TESTDATA.is_dir():
        raise pytest.UsageError(f"test data not found at {TESTDATA} (shared/ must sit beside the repo)")


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a database we may CREATE DATABASE from."""
    url = os.environ.get("HAMSRV_TEST_DATABASE_URL")
    if url:
        yield url
        return
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


def _with_dbname(url: str, name: str) -> str:
    return psycopg.conninfo.make_conninfo(url, dbname=name)


@pytest.fixture
def db_url(pg_admin_url: str) -> Iterator[str]:
    """A new, empty database for one test; dropped afterwards."""
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_dbname(pg_admin_url, name)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def db(db_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(db_url, tmp_path)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def app_config(db_url: str, tmp_path: Path) -> config_mod.Config:
    """Configuration for an app on free ports, talking to this test's database."""
    return replace(config_mod.load({}, env={}), database_url=db_url, data_dir=tmp_path,
                   http=config_mod.Bind("127.0.0.1", 0), cluster=config_mod.Bind("127.0.0.1", 0),
                   cluster_feeds="127.0.0.1", shutdown_grace=2.0, syncs="",  # no syncs to the internet
                   ws_per_ip=5000)  # every test client comes from 127.0.0.1


@pytest.fixture
async def running(app_config: config_mod.Config, nursery: trio.Nursery) -> AsyncIterator[Any]:
    """The whole hamsrv app in this process; shut down cleanly at the end of the test."""
    from hamsrv.app import Running, run

    handle: Running = await nursery.start(lambda task_status: run(app_config, handle_signals=False,
                                                                  task_status=task_status))
    yield handle
    handle.shutdown.set()


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of this test's own, on a unix socket (it can be stopped and started)."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()
