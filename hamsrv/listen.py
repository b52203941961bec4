"""Binding listeners, shared by every TCP service of the process."""

from __future__ import annotations

import trio

from hamsrv.errors import ConfigError


async def open_listeners(host: str, port: int) -> list[trio.SocketListener]:
    """Bind, turning the usual failures (port taken, no such address) into a one-line ConfigError."""
    try:
        return await trio.open_tcp_listeners(port, host=host, backlog=4096)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
