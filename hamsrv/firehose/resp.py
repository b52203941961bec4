"""A small Redis client for trio: RESP commands encoded here, replies parsed by `hiredis.Reader`.

DESIGN section 2: redis-py cannot run under trio, and a RESP client on trio streams with hiredis as
the parser costs a quarter of coredis per message. hamsrv needs only a handful of stream commands, so
this stays small: one connection, pipelined commands, replies in order. Behind Redis Sentinel the
connection goes to the master Sentinel names; in a Redis Cluster it goes to the master owning the one key
the caller works on (hamsrv's bridge uses one stream key). Either is looked up again on every reconnect,
so a failover costs one reconnect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

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


Address = tuple[str, int | str]  # (host, port), or ("", unix socket path)


@dataclass(frozen=True)
class Target:
    """Where a URL says Redis is: one server, a set of Sentinels and a master name, or Cluster seeds."""

    kind: str  # "server", "sentinel" or "cluster"
    addresses: tuple[Address, ...]
    password: str | None = None
    db: int = 0
    master: str = ""  # the Sentinel master name


SCHEMES = {"redis": "server", "unix": "server", "redis+sentinel": "sentinel", "redis+cluster": "cluster"}
DEFAULT_PORTS = {"server": 6379, "sentinel": 26379, "cluster": 6379}


def _address(text: str, default_port: int, url: str) -> Address:
    host, sep, port = text.rpartition(":") if not text.endswith("]") else (text, "", "")
    if not sep:
        host, port = text, str(default_port)
    host = host.strip("[]")
    if not host or not port.isdecimal() or not 0 < int(port) < 65536:
        raise ValueError(f"{url!r}: {text!r} is not HOST[:PORT]")
    return host, int(port)


def parse_url(url: str) -> Target:
    """redis://[:pw@]host[:port][/db], unix:///path, redis+sentinel://[:pw@]h1[:port],h2.../MASTER[/db]
    or redis+cluster://[:pw@]h1[:port],h2... (a Cluster has only database 0)."""
    scheme, sep, rest = url.partition("://")
    kind = SCHEMES.get(scheme)
    if not sep or kind is None:
        raise ValueError(f"{url!r} is not a redis://, unix://, redis+sentinel:// or redis+cluster:// URL")
    credentials, at, location = rest.rpartition("@")
    password = unquote(credentials.rpartition(":")[2]) if at and credentials else None
    if scheme == "unix":
        if not location.startswith("/") or location == "/":
            raise ValueError(f"{url!r}: no socket path")
        return Target(kind, (("", location),), password)
    netloc, _, path = location.partition("/")
    hosts = [h for h in netloc.split(",") if h]
    if not hosts or (kind == "server" and len(hosts) > 1):
        raise ValueError(f"{url!r}: {'one host' if kind == 'server' else 'at least one host'} is needed")
    addresses = tuple(_address(h, DEFAULT_PORTS[kind], url) for h in hosts)
    parts = [p for p in path.split("/") if p]
    master = parts.pop(0) if kind == "sentinel" and parts else ""
    if kind == "sentinel" and not master:
        raise ValueError(f"{url!r}: name the Sentinel master after the hosts (…/mymaster)")
    db_text = parts[0] if len(parts) == 1 else "0" if not parts else "x"
    if not db_text.isdecimal() or (kind == "cluster" and db_text != "0"):
        raise ValueError(f"{url!r}: database {'/'.join(parts)!r} is not a number"
                         + (" (a Cluster has only database 0)" if kind == "cluster" else ""))
    return Target(kind, addresses, password, int(db_text), master)


def key_slot(key: bytes) -> int:
    """The Redis Cluster hash slot of `key`: CRC16/XMODEM of the key, or of its {hash tag}, mod 16384."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    crc = 0
    for byte in key:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc % 16384


def _where(address: Address) -> str:
    host, port = address
    return str(port) if not host else f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Redis:
    """One connection. Use `async with await Redis.connect(url) as r:`; commands run one at a time."""

    def __init__(self, stream: trio.abc.Stream):
        self._stream = stream
        self._reader = hiredis.Reader()
        self._lock = trio.Lock()

    @classmethod
    async def connect(cls, url: str, *, key: bytes | str = b"", timeout: float = 5.0) -> Redis:
        """A connection to the server `url` names; for a Cluster, to the master owning `key`."""
        target = parse_url(url)
        if target.kind == "sentinel":
            address = await cls._ask_sentinels(target, timeout)
        elif target.kind == "cluster":
            address = await cls._ask_cluster(target, key.encode() if isinstance(key, str) else key, timeout)
        else:
            address = target.addresses[0]
        client = await cls._open(address, target.password, timeout)
        try:
            if target.db:
                await client.command("SELECT", target.db)
            if target.kind == "sentinel" and (role := await client.command("ROLE")) and \
                    isinstance(role, list) and role[0] != b"master":
                raise RedisError(f"Redis at {_where(address)} is not a master yet (failover in progress?)")
        except BaseException:
            await client.aclose()
            raise
        return client

    @classmethod
    async def _open(cls, address: Address, password: str | None, timeout: float) -> Redis:
        host, port = address
        try:
            with trio.fail_after(timeout):
                if isinstance(port, str):
                    stream: trio.abc.Stream = await trio.open_unix_socket(port)
                else:
                    stream = await trio.open_tcp_stream(host, port)
        except (OSError, trio.TooSlowError) as exc:
            raise RedisError(f"cannot connect to Redis at {_where(address)}: {exc or 'timed out'}") from exc
        client = cls(stream)
        if password is not None:
            try:
                await client.command("AUTH", password)
            except BaseException:
                await client.aclose()
                raise
        return client

    @classmethod
    async def _ask_sentinels(cls, target: Target, timeout: float) -> Address:
        """The master's address from the first Sentinel that knows it (Sentinels take no password here)."""
        problems = []
        for sentinel in target.addresses:
            try:
                async with await cls._open(sentinel, None, timeout) as client:
                    reply = await client.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", target.master)
            except RedisError as exc:
                problems.append(str(exc))
                continue
            if isinstance(reply, list) and len(reply) == 2:
                return reply[0].decode(), int(reply[1])
            problems.append(f"Sentinel {_where(sentinel)} does not know master {target.master!r}")
        raise RedisError("no Sentinel named a master: " + "; ".join(problems))

    @classmethod
    async def _ask_cluster(cls, target: Target, key: bytes, timeout: float) -> Address:
        """The address of the master serving `key`'s slot, from the first seed node that answers."""
        slot, problems = key_slot(key), []
        for seed in target.addresses:
            try:
                async with await cls._open(seed, target.password, timeout) as client:
                    ranges = await client.command("CLUSTER", "SLOTS")
            except RedisError as exc:
                problems.append(str(exc))
                continue
            for first, last, master, *_ in ranges if isinstance(ranges, list) else []:
                if first <= slot <= last:
                    host = master[0].decode() or seed[0]  # an empty host means "the one you asked"
                    return host, int(master[1])
            problems.append(f"no node of the Cluster at {_where(seed)} serves slot {slot}")
        raise RedisError("no Cluster node could say where the key lives: " + "; ".join(problems))

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
