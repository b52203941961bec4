"""A small Redis client for trio: RESP commands encoded here, replies parsed by `hiredis.Reader`.

DESIGN section 2: redis-py cannot run under trio, and a RESP client on trio streams with hiredis as
the parser costs a quarter of coredis per message. hamsrv needs only a handful of stream commands, so
this stays small: one connection, pipelined commands, replies in order. Sentinel and Cluster are not
supported (one Redis server per deployment).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

import hiredis
import trio

Arg = bytes | str | int | float


class RedisError(Exception):
    """Redis answered with an error, or the connection failed (the message says which)."""


def encode_command(args: Sequence[Arg]) -> bytes:
    """One command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def parse_url(url: str) -> tuple[str, int | str, str | None, int]:
    """(host, port or unix socket path, password, db) from redis://[:pw@]host[:port][/db] or unix:///path."""
    parts = urlsplit(url)
    password = unquote(parts.password) if parts.password else None
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(f"{url!r}: no socket path")
        return "", parts.path, password, 0
    if parts.scheme != "redis" or not parts.hostname:
        raise ValueError(f"{url!r} is not a redis:// or unix:// URL")
    db_text = parts.path.lstrip("/") or "0"
    if not db_text.isdecimal():
        raise ValueError(f"{url!r}: database {db_text!r} is not a number")
    return parts.hostname, parts.port or 6379, password, int(db_text)


class Redis:
    """One connection. Use `async with await Redis.connect(url) as r:`; commands run one at a time."""

    def __init__(self, stream: trio.abc.Stream):
        self._stream = stream
        self._reader = hiredis.Reader()
        self._lock = trio.Lock()

    @classmethod
    async def connect(cls, url: str, *, timeout: float = 5.0) -> Redis:
        host, port, password, db = parse_url(url)
        try:
            with trio.fail_after(timeout):
                if isinstance(port, str):
                    stream: trio.abc.Stream = await trio.open_unix_socket(port)
                else:
                    stream = await trio.open_tcp_stream(host, port)
        except (OSError, trio.TooSlowError) as exc:
            raise RedisError(f"cannot connect to Redis at {url.split('@')[-1]}: {exc or 'timed out'}") from exc
        client = cls(stream)
        try:
            if password is not None:
                await client.command("AUTH", password)
            if db:
                await client.command("SELECT", db)
        except BaseException:
            await client.aclose()
            raise
        return client

    async def command(self, *args: Arg) -> object:
        return (await self.pipeline([args]))[0]

    async def pipeline(self, commands: Sequence[Sequence[Arg]]) -> list[object]:
        """Send every command in one write, return their replies in order (errors raise RedisError)."""
        async with self._lock:
            try:
                await self._stream.send_all(b"".join(encode_command(c) for c in commands))
                replies = [await self._reply() for _ in commands]
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise RedisError(f"Redis connection lost: {exc}") from exc
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise RedisError(f"Redis refused: {reply}")
        return replies

    async def _reply(self) -> object:
        while (reply := self._reader.gets()) is False:
            data = await self._stream.receive_some(65536)
            if not data:
                raise RedisError("Redis closed the connection")
            self._reader.feed(data)
        return reply

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def __aenter__(self) -> Redis:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
