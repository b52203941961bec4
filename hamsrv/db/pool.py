"""A small trio connection pool for TrioConnection.

Bounded size, an acquire timeout (PoolTimeout instead of waiting forever), and transparent reconnect:
a pooled connection found dead (server restarted, network dropped) is thrown away and replaced, so
callers see at most the one error of the request that was running when the server went away.
"""

from __future__ import annotations

import contextlib
import select
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import psycopg
import trio
from psycopg import pq

from hamsrv.db.errors import describe, translate
from hamsrv.db.trio_pg import TrioConnection
from hamsrv.errors import DatabaseError, PoolTimeout


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    """What /metrics shows of the pool (trio's `statistics()` convention)."""

    max_size: int
    in_use: int  # connections borrowed now
    connects: int  # connections opened over the pool's life (reconnects show up here)
    waits: int  # borrowers that found every connection in use and had to wait
    timeouts: int  # borrowers that gave up waiting (PoolTimeout)
    connect_errors: int  # failed attempts to open a connection


class Pool:
    def __init__(self, conninfo: str, *, max_size: int = 10, acquire_timeout: float = 10.0,
                 connect_timeout: float = 10.0):
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.conninfo = conninfo
        self.max_size = max_size
        self.acquire_timeout = acquire_timeout
        self.connect_timeout = connect_timeout
        self._idle: list[TrioConnection] = []
        self._slots = trio.Semaphore(max_size)
        self._closed = False
        self.connects = 0  # connections opened over the pool's life (reconnects show up here)
        self.waits = 0  # borrowers that found every connection in use and had to wait
        self.timeouts = 0  # borrowers that gave up waiting (PoolTimeout)
        self.connect_errors = 0  # failed attempts to open a connection

    @property
    def in_use(self) -> int:
        return self.max_size - self._slots.value

    def statistics(self) -> PoolStatistics:
        return PoolStatistics(self.max_size, self.in_use, self.connects, self.waits, self.timeouts,
                              self.connect_errors)

    async def open(self) -> None:
        """Check that the database answers now, so start-up fails early with a clear error."""
        async with self.connection() as conn:
            try:
                await conn.execute("SELECT 1")
            except psycopg.Error as exc:
                raise translate(exc) from None

    async def _connect(self) -> TrioConnection:
        try:
            with trio.fail_after(self.connect_timeout):
                conn = await TrioConnection.connect(self.conninfo, autocommit=True)
        except trio.TooSlowError:
            self.connect_errors += 1
            raise DatabaseError(f"database did not answer within {self.connect_timeout:g} s") from None
        except psycopg.Error as exc:
            self.connect_errors += 1
            raise DatabaseError(f"cannot connect to the database: {describe(exc)}") from None
        self.connects += 1
        return conn

    @staticmethod
    def _alive(conn: TrioConnection) -> bool:
        """Cheap check of an idle connection. The server says nothing to an idle pooled connection
        unless it is going away (shutdown, restart, admin kill), so a readable socket means dead."""
        if conn.closed or conn.broken or conn.pgconn.status != pq.ConnStatus.OK:
            return False
        poller = select.poll()  # not select.select: it fails on descriptors above 1023
        poller.register(conn.pgconn.socket, select.POLLIN)
        return not poller.poll(0)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[TrioConnection]:
        """Borrow a connection in autocommit mode; use `conn.transaction()` for transactions."""
        if self._closed:
            raise DatabaseError("the database pool is closed")
        if self._slots.value == 0:
            self.waits += 1
        try:
            with trio.fail_after(self.acquire_timeout):
                await self._slots.acquire()
        except trio.TooSlowError:
            self.timeouts += 1
            raise PoolTimeout(f"no database connection free within {self.acquire_timeout:g} s "
                              f"(pool size {self.max_size})") from None
        conn: TrioConnection | None = None
        try:
            while self._idle and conn is None:
                candidate = self._idle.pop()
                if self._alive(candidate):
                    conn = candidate
                else:
                    await self._discard(candidate)
            if conn is None:
                conn = await self._connect()
            yield conn
        finally:
            if conn is not None:
                await self._give_back(conn)
            self._slots.release()

    async def _give_back(self, conn: TrioConnection) -> None:
        status = conn.pgconn.transaction_status
        if self._closed or conn.closed or conn.broken or status not in (
                pq.TransactionStatus.IDLE, pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR):
            await self._discard(conn)
            return
        if status != pq.TransactionStatus.IDLE:  # left in a transaction: roll it back before reuse
            try:
                with trio.CancelScope(shield=True), trio.fail_after(5):
                    await conn.rollback()
            except (psycopg.Error, trio.TooSlowError):
                await self._discard(conn)
                return
        self._idle.append(conn)

    @staticmethod
    async def _discard(conn: TrioConnection) -> None:
        with trio.CancelScope(shield=True), contextlib.suppress(psycopg.Error):
            await conn.close()

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._discard(conn)

