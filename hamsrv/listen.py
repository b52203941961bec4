"""Binding listeners, shared by every TCP service of the process."""

from __future__ import annotations

import trio

from hamsrv.errors import ConfigError


async def open_listeners(host: str, port: int, *, reuse_port: bool = False) -> list[trio.SocketListener]:
    """Bind, turning the usual failures (port taken, no such address) into a one-line ConfigError.

    `reuse_port`: several processes bind the same port and the kernel spreads connections over them
    (SO_REUSEPORT), as `hamsrv serve --workers N` does.
    """
    try:
        if not reuse_port:
            return await trio.open_tcp_listeners(port, host=host, backlog=4096)
        listeners = []
        for family, kind, proto, _name, address in await trio.socket.getaddrinfo(
                host, port, type=trio.socket.SOCK_STREAM, flags=trio.socket.AI_PASSIVE):
            sock = trio.socket.socket(family, kind, proto)
            sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
            sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEPORT, 1)
            await sock.bind(address)
            sock.listen(4096)
            listeners.append(trio.SocketListener(sock))
        return listeners
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
