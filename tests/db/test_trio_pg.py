"""The psycopg-under-trio adapter against a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
import trio

from hamsrv.db.trio_pg import TrioConnection


@pytest.fixture
async def conn(db_url: str):
    c = await TrioConnection.connect(db_url, autocommit=True)
    yield c
    await c.close()


async def test_query_with_parameters_and_types(conn: TrioConnection) -> None:
    cur = await conn.execute("SELECT %s::int + 1, %s::text, %s::timestamptz",
                             [41, "W1AW", datetime(2024, 5, 1, 12, 0, tzinfo=UTC)])
    assert await cur.fetchone() == (42, "W1AW", datetime(2024, 5, 1, 12, 0, tzinfo=UTC))


async def test_host_name_is_resolved_without_asyncio(db_url: str) -> None:
    params = psycopg.conninfo.conninfo_to_dict(db_url)
    if str(params.get("host", "")).startswith("/"):  # embedded server: unix socket; use a TCP name too
        params = {"host": "localhost", "dbname": "this_db_does_not_exist_x", "connect_timeout": 2}
        with pytest.raises(psycopg.OperationalError):
            await TrioConnection.connect(psycopg.conninfo.make_conninfo(**params))
    else:
        c = await TrioConnection.connect(db_url)
        await c.close()


async def test_transaction_rolls_back_on_error(conn: TrioConnection) -> None:
    await conn.execute("CREATE TABLE t (x int PRIMARY KEY)")
    with pytest.raises(psycopg.errors.UniqueViolation):
        async with conn.transaction():
            await conn.execute("INSERT INTO t VALUES (1)")
            await conn.execute("INSERT INTO t VALUES (1)")
    cur = await conn.execute("SELECT count(*) FROM t")
    assert await cur.fetchone() == (0,)


async def test_binary_copy_in_and_out(conn: TrioConnection) -> None:
    await conn.execute("CREATE TABLE q (call text, at timestamptz, freq float8, extra jsonb)")
    rows = [(f"K{i}ABC", datetime(2024, 1, 1, 0, i % 60, tzinfo=UTC), 14.074 + i / 1000, None)
            for i in range(5000)]
    cur = conn.cursor()
    async with cur.copy("COPY q (call, at, freq, extra) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["text", "timestamptz", "float8", "jsonb"])
        for row in rows:
            await copy.write_row(row)
    got = []
    async with cur.copy("COPY (SELECT call, at, freq FROM q ORDER BY freq) TO STDOUT (FORMAT BINARY)") as copy:
        copy.set_types(["text", "timestamptz", "float8"])
        async for row in copy.rows():
            got.append(row)
    assert got == [r[:3] for r in rows]


async def test_listen_notify(conn: TrioConnection, db_url: str) -> None:
    await conn.execute("LISTEN spots")
    other = await TrioConnection.connect(db_url, autocommit=True)
    await other.execute("SELECT pg_notify('spots', 'DX de W1AW')")
    await other.close()
    with trio.fail_after(5):
        async for note in conn.notifies():
            assert (note.channel, note.payload) == ("spots", "DX de W1AW")
            break


async def test_cancel_scope_cancels_the_query_and_connection_stays_usable(conn: TrioConnection) -> None:
    with trio.move_on_after(0.2) as scope:
        await conn.execute("SELECT pg_sleep(30)")
    assert scope.cancelled_caught
    assert conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
    cur = await conn.execute("SELECT 'still alive'")
    assert await cur.fetchone() == ("still alive",)


async def test_other_tasks_run_while_a_query_waits(conn: TrioConnection) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await trio.sleep(0.01)
            ticks += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        await conn.execute("SELECT pg_sleep(0.3)")
        nursery.cancel_scope.cancel()
    assert ticks >= 5  # the event loop was not blocked by the query
