"""The trio pool against real PostgreSQL servers, including a server restart."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from hamsrv.db.migrate import available, migrate
from hamsrv.db.pool import Pool
from hamsrv.errors import DatabaseError, PoolTimeout


async def test_pool_reuses_connections(db_url: str) -> None:
    pool = Pool(db_url, max_size=2)
    for _ in range(5):
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
    assert pool.connects == 1
    await pool.close()


async def test_exhaustion_times_out_with_a_clear_error(db_url: str) -> None:
    pool = Pool(db_url, max_size=1, acquire_timeout=0.2)
    async with pool.connection():
        with pytest.raises(PoolTimeout, match="no database connection free"):
            async with pool.connection():
                pass
    async with pool.connection() as conn:  # the slot came back
        await conn.execute("SELECT 1")
    await pool.close()


async def test_transaction_left_open_is_rolled_back_on_return(db_url: str) -> None:
    pool = Pool(db_url, max_size=1)
    async with pool.connection() as conn:
        await conn.execute("CREATE TABLE t (x int)")
    with pytest.raises(RuntimeError):
        async with pool.connection() as conn:
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO t VALUES (1)")
            raise RuntimeError("boom")
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM t")
        assert await cur.fetchone() == (0,)
    await pool.close()


async def test_cancelled_borrower_does_not_poison_the_pool(db_url: str) -> None:
    pool = Pool(db_url, max_size=1)
    with trio.move_on_after(0.2):
        async with pool.connection() as conn:
            await conn.execute("SELECT pg_sleep(30)")
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT 7")
        assert await cur.fetchone() == (7,)
    await pool.close()


async def test_unreachable_server_is_a_database_error() -> None:
    pool = Pool("host=127.0.0.1 port=1 dbname=x connect_timeout=2", connect_timeout=3)
    with pytest.raises(DatabaseError, match="cannot connect"):
        await pool.open()


async def test_reconnects_after_the_server_restarts(tmp_path: Path) -> None:
    import pgserver
    from pgserver._commands import pg_ctl

    server = pgserver.get_server(tmp_path / "pg", cleanup_mode="stop")
    try:
        pool = Pool(server.get_uri(), max_size=2)
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
        await trio.to_thread.run_sync(lambda: pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata,
                                                     user=server.system_user, timeout=30))
        async with pool.connection() as conn:  # the dead idle connection is replaced transparently
            cur = await conn.execute("SELECT 'back'")
            assert await cur.fetchone() == ("back",)
        assert pool.connects == 2
        await pool.close()
    finally:
        server.cleanup()


async def test_migrations_apply_once_even_when_run_concurrently(db_url: str) -> None:
    pool = Pool(db_url, max_size=4)
    results: list[list[str]] = []

    async def one() -> None:
        results.append(await migrate(pool))

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(one)
    assert sorted(len(r) for r in results) == [0, 0, len(available())]
    assert await migrate(pool) == []
    await pool.close()


async def test_statistics_count_a_wait_and_a_timeout(db_url: str) -> None:
    pool = Pool(db_url, max_size=1, acquire_timeout=0.2)
    async with pool.connection():
        assert pool.statistics().in_use == 1
        with pytest.raises(PoolTimeout):
            async with pool.connection():
                pass
    stats = pool.statistics()
    assert (stats.max_size, stats.in_use, stats.connects, stats.waits, stats.timeouts) == (1, 0, 1, 1, 1)
    await pool.close()
