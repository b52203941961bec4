"""The one public port: read the request head, send `/ws/firehose` upgrades to the firehose fast path
and hand every other connection (with the bytes already read) to hypercorn's trio TCPServer.

TCPServer is internal to hypercorn, hence the pinned version and tests/http/test_listener.py.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.utils import wrap_app

from hamsrv.listen import open_listeners

log = logging.getLogger(__name__)

MAX_HEAD = 16 * 1024  # request heads larger than this are not browsers; hypercorn answers them
HEAD_TIMEOUT = 10.0
WRITE_TIMEOUT = 30.0  # a socket unwritable this long belongs to a client that stopped reading
WRITE_SLICE = 64 * 1024  # bytes per timed write

# The client certificate (DER) of the TLS connection whose request is being handled, or None. Set in
# the connection's task, so the app's tasks (spawned below it) see their own connection's certificate.
peer_certificate: contextvars.ContextVar[bytes | None] = contextvars.ContextVar("peer_certificate", default=None)


class FirehoseHandler(Protocol):
    async def handle(self, stream: trio.abc.Stream, head: bytes, peer_ip: str) -> None: ...


class PrefixedStream(trio.abc.Stream):
    """A stream whose first receive returns bytes we already read; everything else is the inner stream's
    (hypercorn looks for `socket`, or `do_handshake`/`transport_stream` on TLS). A write that makes no
    progress for `write_timeout` seconds breaks the stream: hypercorn shields its writes from
    cancellation, so without this a client that stops reading (a WebSocket page, a download) would hold
    its handler for good."""

    def __init__(self, inner: trio.abc.Stream, prefix: bytes, write_timeout: float = WRITE_TIMEOUT):
        self._inner, self._prefix, self._write_timeout = inner, prefix, write_timeout

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        return bytes(await self._inner.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        for start in range(0, len(view), WRITE_SLICE):  # the timeout is for progress, not for a big write
            with trio.move_on_after(self._write_timeout):
                await self._inner.send_all(view[start:start + WRITE_SLICE])
                continue
            raise trio.BrokenResourceError(f"the client read nothing for {self._write_timeout:g} s")

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._inner.send_eof()  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def is_firehose_upgrade(head: bytes) -> bool:
    line, _, rest = head.partition(b"\r\n")
    parts = line.split(b" ")
    if len(parts) != 3 or parts[0] != b"GET":
        return False
    path = parts[1].split(b"?", 1)[0]
    return path == b"/ws/firehose" and b"upgrade:" in rest.lower()


async def read_head(stream: trio.abc.Stream) -> bytes:
    buf = b""
    with trio.move_on_after(HEAD_TIMEOUT):
        while b"\r\n\r\n" not in buf and len(buf) < MAX_HEAD:
            data = await stream.receive_some(MAX_HEAD)
            if not data:
                break
            buf += data
    return buf


def peer_ip_of(stream: trio.abc.Stream) -> str:
    sock_stream: Any = getattr(stream, "transport_stream", stream)
    try:
        return str(sock_stream.socket.getpeername()[0])
    except (AttributeError, OSError):
        return "?"


async def send_tls_alert(conn: trio.SSLStream[trio.SocketStream], stream: trio.SocketStream) -> None:
    """Send the alert OpenSSL wrote when it refused the handshake (e.g. "unknown CA" for a client
    certificate from another authority): trio's SSLStream leaves it unsent in its outgoing buffer, and
    without it the client only sees the connection drop."""
    outgoing = getattr(conn, "_outgoing", None)
    pending = outgoing.read() if isinstance(outgoing, ssl.MemoryBIO) else b""
    if pending:
        with trio.move_on_after(1.0), contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError,
                                                           OSError):
            await stream.send_all(pending)


def hypercorn_config(grace: float) -> HypercornConfig:
    config = HypercornConfig()
    config.graceful_timeout = grace
    config.keep_alive_timeout = 75
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.include_server_header = False
    config.websocket_max_message_size = 64 * 1024  # what a page may send (the user bus takes 2 KiB)
    return config


async def serve_public(app: Any, firehose: FirehoseHandler | None, host: str, port: int, *,
                       ssl_context: ssl.SSLContext | None = None, grace: float = 4.0,
                       shutdown: trio.Event | None = None, reuse_port: bool = False,
                       task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve until cancelled or until `shutdown` is set; then stop accepting, let requests in flight
    finish for up to `grace` seconds, and return. started() reports the bound port."""
    config = hypercorn_config(grace)
    wrapped = wrap_app(app, config.wsgi_max_body_size, "asgi")
    context = WorkerContext(None)
    lifespan_state: dict[str, Any] = {}
    lifespan = Lifespan(wrapped, config, lifespan_state)
    listeners = await open_listeners(host, port, reuse_port=reuse_port)
    bound = listeners[0].socket.getsockname()[1]

    async def handle(stream: trio.SocketStream) -> None:
        try:
            await handle_connection(stream)
        except Exception:  # a bug in one connection must not take the public port down for everyone
            log.exception("public connection failed")
            await trio.aclose_forcefully(stream)

    async def handle_connection(stream: trio.SocketStream) -> None:
        conn: trio.abc.Stream = stream
        if ssl_context is not None:
            conn = trio.SSLStream(stream, ssl_context, server_side=True, https_compatible=True)
            try:
                with trio.fail_after(config.ssl_handshake_timeout):
                    await conn.do_handshake()
            except (trio.BrokenResourceError, trio.TooSlowError) as exc:
                if ssl_context.verify_mode != ssl.CERT_NONE:  # the mTLS listener: say why
                    log.info("TLS handshake from %s refused: %s", peer_ip_of(stream), exc.__cause__ or exc)
                    await send_tls_alert(conn, stream)
                await trio.aclose_forcefully(conn)
                return
            peer_certificate.set(conn.getpeercert(binary_form=True))
        try:
            head = await read_head(conn)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await trio.aclose_forcefully(conn)
            return
        if not head:
            await trio.aclose_forcefully(conn)
            return
        if firehose is not None and is_firehose_upgrade(head):
            try:
                await firehose.handle(conn, head, peer_ip_of(conn))
            finally:
                await trio.aclose_forcefully(conn)
            return
        server = TCPServer(wrapped, config, context, lifespan_state.copy(),  # type: ignore[arg-type]
                           PrefixedStream(conn, head))  # type: ignore[arg-type]
        await server.run()

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as handlers:
            async with trio.open_nursery() as acceptor:
                acceptor.start_soon(_serve_listeners, handle, listeners, handlers)
                task_status.started(bound)
                if shutdown is not None:
                    await shutdown.wait()
                    acceptor.cancel_scope.cancel()
            # Not accepting any more: idle keep-alive connections close, requests in flight get `grace`.
            await context.terminated.set()
            handlers.cancel_scope.deadline = trio.current_time() + grace
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()


async def _serve_listeners(handler: Callable[[trio.SocketStream], Awaitable[None]],
                           listeners: list[trio.SocketListener], handlers: trio.Nursery) -> None:
    await trio.serve_listeners(handler, listeners, handler_nursery=handlers)  # type: ignore[arg-type]
