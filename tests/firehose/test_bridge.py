"""Cross-node fan-out through a real redis-server: hubs of several nodes, and whole hamsrv nodes."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hiredis
import msgpack
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from bench.peers.redis_server import RedisGroup, RedisServer
from hamsrv.firehose.bridge import Bridge, spot_from_wire, spot_to_wire
from hamsrv.firehose.hub import Hub
from hamsrv.firehose.resp import Redis, RedisError, Target, encode_command, key_slot, parse_url
from hamsrv.model import Spot


def make_spot(dx: str, khz: float = 14025.0) -> Spot:
    return Spot("DL1ABC", khz, dx, "cq", datetime(2026, 12, 3, 12, 0, tzinfo=UTC), band="20m", mode="CW",
                extra={"k": "v"})


@given(st.lists(st.one_of(st.binary(max_size=300), st.text(max_size=50), st.integers()), min_size=1, max_size=20))
def test_commands_are_valid_resp(args: list[Any]) -> None:
    reader = hiredis.Reader()
    reader.feed(encode_command(args))
    assert reader.gets() == [a if isinstance(a, bytes) else str(a).encode() for a in args]


def test_parse_url() -> None:
    assert parse_url("redis://:p%40ss@example.org:6380/2") == Target("server", (("example.org", 6380),), "p@ss", 2)
    assert parse_url("unix:///run/redis.sock") == Target("server", (("", "/run/redis.sock"),))
    assert parse_url("redis+sentinel://s1,[::1]:26380/spots/3") == Target(
        "sentinel", (("s1", 26379), ("::1", 26380)), None, 3, "spots")
    assert parse_url("redis+cluster://:pw@h1:7000,h2") == Target("cluster", (("h1", 7000), ("h2", 6379)), "pw")
    for bad in ("http://x", "redis://", "redis://h/db", "unix://", "redis://a,b", "redis+sentinel://s1",
                "redis+cluster://h1/2", "redis://h:99999", "redis://h:port"):
        with pytest.raises(ValueError):
            parse_url(bad)


@given(st.text(max_size=80))
def test_parse_url_refuses_in_words(text: str) -> None:
    """Any text is a Target or a ValueError (which config turns into one line), never another exception."""
    with contextlib.suppress(ValueError):
        parse_url(text)
    with contextlib.suppress(ValueError):
        parse_url("redis+sentinel://" + text)


def test_key_slot_known_values() -> None:
    """CRC16/XMODEM's check value is 0x31C3 for "123456789"; a {hash tag} decides the slot (Cluster spec)."""
    assert key_slot(b"123456789") == 0x31C3
    assert key_slot(b"{user1000}.following") == key_slot(b"user1000")


def test_wire_round_trip() -> None:
    spot = make_spot("K1ABC")
    node, seq, back = spot_from_wire(spot_to_wire(spot, "n1", 7))
    assert (node, seq) == ("n1", 7) and back == spot


@given(st.binary(max_size=200))
def test_wire_rejects_garbage(data: bytes) -> None:
    """Any bytes: a spot or ValueError, never another exception."""
    with contextlib.suppress(ValueError):
        spot_from_wire(data)


def test_wire_rejects_bad_entries() -> None:
    for entry in ({"node": "x"}, {"node": "x", "seq": 1, "spot": {"time": float("inf")}},
                  {"node": "x", "seq": 1, "spot": {"time": 1.0, "dx": "K1A"}}, [1, 2]):
        with pytest.raises(ValueError):
            spot_from_wire(msgpack.packb(entry))


async def test_redis_errors_are_words(redis: RedisServer, tmp_path: Path) -> None:
    async with await Redis.connect(redis.url) as r:
        assert await r.command("PING") == b"PONG"
        with pytest.raises(RedisError, match="refused"):
            await r.command("NOSUCHCOMMAND")
        assert await r.command("PING") == b"PONG"  # the connection survives an error reply
    with pytest.raises(RedisError, match="cannot connect"):
        await Redis.connect(f"unix://{tmp_path}/nothing.sock")


async def wait_for(predicate: Any, timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.02)


def dxs(hub: Hub) -> list[str]:
    return [e.spot.dx for e in hub.ring.after(0)]


async def start_nodes(nursery: trio.Nursery, url: str, count: int, name: str = "n") -> list[Hub]:
    hubs = []
    for i in range(count):
        hub = Hub(tick=0.01)
        await nursery.start(hub.run)
        await nursery.start(Bridge(hub, url, node_id=f"{name}{i}", block_ms=100).run)
        hubs.append(hub)
    return hubs


async def test_three_nodes_exactly_once(redis: RedisServer, nursery: trio.Nursery) -> None:
    hubs = await start_nodes(nursery, redis.url, 3)
    await trio.sleep(0.3)  # every reader has found the stream's end
    for i, hub in enumerate(hubs):
        hub.publish(make_spot(f"K{i}AA"))
    want = sorted(f"K{i}AA" for i in range(3))
    await wait_for(lambda: all(len(dxs(h)) >= 3 for h in hubs))
    await trio.sleep(0.5)  # anything echoed or repeated would arrive by now
    for hub in hubs:
        assert sorted(dxs(hub)) == want


async def test_outage_catches_up_without_loss_or_duplicates(redis: RedisServer, nursery: trio.Nursery) -> None:
    a, b = await start_nodes(nursery, redis.url, 2)
    await trio.sleep(0.3)
    a.publish(make_spot("K1BEFORE"))
    await wait_for(lambda: dxs(b) == ["K1BEFORE"])
    redis.stop()
    for n in range(5):
        a.publish(make_spot(f"K1OUT{n}"))
        b.publish(make_spot(f"K2OUT{n}"))
    await trio.sleep(10)  # ten seconds without Redis
    redis.start()
    want = sorted(["K1BEFORE"] + [f"K1OUT{n}" for n in range(5)] + [f"K2OUT{n}" for n in range(5)])
    await wait_for(lambda: len(dxs(a)) >= 10 and len(dxs(b)) >= 11, timeout=30)
    await trio.sleep(0.5)
    assert sorted(dxs(a)) == want and sorted(dxs(b)) == want


async def test_node_killed_and_restarted(redis: RedisServer, nursery: trio.Nursery) -> None:
    """A node that dies and comes back under the same id: no echo, no duplicate, spots flow both ways."""
    (a,) = await start_nodes(nursery, redis.url, 1, "a")
    with trio.CancelScope() as b_scope:
        async with trio.open_nursery() as b_nursery:
            (b,) = await start_nodes(b_nursery, redis.url, 1, "b")
            await trio.sleep(0.3)
            b.publish(make_spot("K2FIRST"))
            await wait_for(lambda: dxs(a) == ["K2FIRST"])
            b_scope.cancel()  # node b dies
    a.publish(make_spot("K1WHILEDOWN"))
    await trio.sleep(0.3)  # in the stream before b comes back
    (b2,) = await start_nodes(nursery, redis.url, 1, "b")
    await trio.sleep(0.3)
    a.publish(make_spot("K1AFTER"))
    b2.publish(make_spot("K2AFTER"))
    await wait_for(lambda: len(dxs(a)) >= 4 and len(dxs(b2)) >= 2)
    await trio.sleep(0.5)
    assert sorted(dxs(a)) == ["K1AFTER", "K1WHILEDOWN", "K2AFTER", "K2FIRST"]
    assert sorted(dxs(b2)) == ["K1AFTER", "K2AFTER"]  # a new node starts at the stream's end


async def test_node_restart_reads_from_the_stream(redis: RedisServer, nursery: trio.Nursery) -> None:
    """A node that starts later gets only what arrives after it started, never history twice."""
    (a,) = await start_nodes(nursery, redis.url, 1, "a")
    a.publish(make_spot("K1OLD"))
    await trio.sleep(0.3)
    (b,) = await start_nodes(nursery, redis.url, 1, "b")
    await trio.sleep(0.3)
    a.publish(make_spot("K1NEW"))
    await wait_for(lambda: len(dxs(b)) >= 1)
    await trio.sleep(0.3)
    assert dxs(b) == ["K1NEW"]


@pytest.fixture
def redis_group(tmp_path: Path) -> Any:
    group = RedisGroup(tmp_path / "group")
    yield group
    group.stop()


async def test_sentinel_names_the_master(redis_group: RedisGroup, nursery: trio.Nursery) -> None:
    master, sentinel = redis_group.start_sentinel("spots")
    url = f"redis+sentinel://127.0.0.1:1,127.0.0.1:{sentinel}/spots"  # the first Sentinel is down
    hubs = await start_nodes(nursery, url, 2)
    await trio.sleep(0.3)
    hubs[0].publish(make_spot("K1SENT"))
    await wait_for(lambda: dxs(hubs[1]) == ["K1SENT"])
    async with await Redis.connect(f"redis://127.0.0.1:{master}") as direct:
        assert await direct.command("XLEN", "hamsrv:spots") == 1  # the stream lives on the master
    with pytest.raises(RedisError, match="does not know master 'other'"):
        await Redis.connect(f"redis+sentinel://127.0.0.1:{sentinel}/other")


async def test_cluster_finds_the_keys_master(redis_group: RedisGroup, nursery: trio.Nursery) -> None:
    ports = redis_group.start_cluster(3)
    async with await Redis.connect(f"redis://127.0.0.1:{ports[0]}") as node:
        for key in (b"hamsrv:spots", b"123456789", b"{user1000}.following", b"a{b}c", b"{}x", b"\xff\x00k"):
            assert await node.command("CLUSTER", "KEYSLOT", key) == key_slot(key)
    for seed in ports:  # whichever node is named first, the connection lands where the stream's slot is
        async with await Redis.connect(f"redis+cluster://127.0.0.1:{seed}", key="hamsrv:spots") as r:
            assert await r.command("XADD", "hamsrv:spots", "*", "k", "v")
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)
    hubs = await start_nodes(nursery, url, 2)
    await trio.sleep(0.3)
    hubs[1].publish(make_spot("K1CLUS"))
    await wait_for(lambda: dxs(hubs[0]) == ["K1CLUS"])
