"""psycopg 3 driven by trio.

psycopg's async connection is written for asyncio in three places only: the functions that wait for the
socket (psycopg.waiting.wait_async / wait_conn_async), the connection lock, and host name resolution.
We replace the two wait functions with trio versions, give each connection a trio.Lock, resolve host
names with trio before psycopg sees them, and make a trio cancellation cancel the query on the server so
the connection stays usable. Everything else (protocol, COPY, LISTEN, pipelines) is psycopg's own code.
Pinned psycopg version: see pyproject.toml; tests/db/test_trio_pg.py guards this adapter.
"""

from __future__ import annotations

import socket
from typing import Any

import psycopg
import trio
from psycopg import errors as pg_errors
from psycopg import pq, waiting
from psycopg.conninfo import conninfo_to_dict

_WAIT_R, _WAIT_W = waiting.WAIT_R, waiting.WAIT_W
_READY_NONE, _READY_R, _READY_W = waiting.READY_NONE, waiting.READY_R, waiting.READY_W


async def _wait_fd(fileno: int, wait: int, interval: float) -> Any:
    """Wait until `fileno` is ready for what `wait` asks; READY_NONE after `interval` seconds."""
    with trio.move_on_after(interval if interval else float("inf")):
        if wait == _WAIT_R:
            await trio.lowlevel.wait_readable(fileno)
            return _READY_R
        if wait == _WAIT_W:
            await trio.lowlevel.wait_writable(fileno)
            return _READY_W
        ready = _READY_NONE

        async def on(direction: Any, waiter: Any, cancel: trio.CancelScope) -> None:
            nonlocal ready
            await waiter(fileno)
            ready |= direction
            cancel.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(on, _READY_R, trio.lowlevel.wait_readable, nursery.cancel_scope)
            nursery.start_soon(on, _READY_W, trio.lowlevel.wait_writable, nursery.cancel_scope)
        return ready
    return _READY_NONE


async def _trio_wait(gen: Any, fileno: int, interval: float = 0.0) -> Any:
    try:
        wait = next(gen)
        while True:
            wait = gen.send(await _wait_fd(fileno, wait, interval))
    except StopIteration as ex:
        return ex.value
    except OSError as ex:
        raise pg_errors.OperationalError("connection socket closed") from ex


async def _trio_wait_conn(gen: Any, interval: float = 0.0) -> Any:
    try:
        fileno, wait = next(gen)
        while True:
            fileno, wait = gen.send(await _wait_fd(fileno, wait, interval))
    except StopIteration as ex:
        return ex.value


waiting.wait_async = _trio_wait  # type: ignore[assignment]
waiting.wait_conn_async = _trio_wait_conn  # type: ignore[assignment]


class TrioConnection(psycopg.AsyncConnection[Any]):
    """An AsyncConnection usable from trio tasks."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lock = trio.Lock()  # type: ignore[assignment]

    @classmethod
    async def _get_connection_params(cls, conninfo: str, **kwargs: Any) -> Any:
        """Resolve host names with trio so psycopg never reaches for the asyncio loop."""
        params = conninfo_to_dict(conninfo, **kwargs)
        host = str(params.get("host") or "")
        if host and not params.get("hostaddr") and not host.startswith("/") and "," not in host:
            port = str(params.get("port") or 5432)
            try:
                infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as ex:
                raise pg_errors.OperationalError(f"cannot resolve host {host!r}: {ex}") from None
            params["hostaddr"] = infos[0][4][0]
        return params

    async def wait(self, gen: Any, interval: float = 0.1) -> Any:
        """Run a libpq generator; on trio cancellation cancel the query server-side, then drain it."""
        try:
            return await _trio_wait(gen, self.pgconn.socket, interval)
        except trio.Cancelled:
            if self.pgconn.transaction_status == pq.TransactionStatus.ACTIVE:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    try:
                        await self.cancel_safe(timeout=5.0)
                        await _trio_wait(gen, self.pgconn.socket, interval)
                    except psycopg.Error:  # QueryCanceled is the expected one; _trio_wait ends StopIteration
                        pass
            raise

    async def cancel_safe(self, *, timeout: float = 30.0) -> None:
        if not self._should_cancel():
            return
        if psycopg.capabilities.has_cancel_safe():
            await _trio_wait_conn(self._cancel_gen(timeout=timeout), interval=0.1)
        else:
            await trio.to_thread.run_sync(self.cancel)
