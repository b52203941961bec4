"""Issue 14: spot history survives a restart (ring snapshot in the data dir, ids continue), and a
client whose `since` cannot be honoured is told so instead of being given renumbered spots."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import trio
from hypothesis import given
from hypothesis import strategies as st
from trio_websocket import open_websocket_url

from hamsrv import config as config_mod
from hamsrv.app import Running, run
from hamsrv.firehose.history import FILE_NAME, decode_history, encode_history
from hamsrv.firehose.ring import SpotRing
from hamsrv.identity.tokens import add_user, issue_token
from hamsrv.model import Spot
from tests.test_e2e_firehose import read_until


async def _start(nursery: trio.Nursery, config: config_mod.Config) -> Running:
    return await nursery.start(lambda task_status: run(config, handle_signals=False, task_status=task_status))


async def test_spots_and_ids_survive_a_restart(app_config: config_mod.Config, nursery: trio.Nursery) -> None:
    with trio.fail_after(30):
        async with trio.open_nursery() as life:  # ends when the first app has shut down
            first = await _start(life, app_config)
            user = await add_user(first.db, "W1AW")
            token = await issue_token(first.db, user["id"])
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{first.http_port}", headers=headers) as client:
                ids = [(await client.post("/api/spots", json={"dx": dx, "freq": 14025})).json()["id"]
                       for dx in ("JA1XYZ", "VK2ABC", "ZS6ABC")]
            first.shutdown.set()
    assert (app_config.data_dir / FILE_NAME).is_file()

    second = await _start(nursery, app_config)
    url = f"http://127.0.0.1:{second.http_port}"
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:
        history = (await client.get("/api/spots")).json()
        assert [s["id"] for s in history["spots"]] == ids and history["last_id"] == ids[-1]
        assert [s["dx"] for s in history["spots"]] == ["JA1XYZ", "VK2ABC", "ZS6ABC"]
        assert history["spots"][0]["band"] == "20m"
        new = (await client.post("/api/spots", json={"dx": "PY2ABC", "freq": 7020})).json()
        assert new["id"] == ids[-1] + 1  # the sequence continues: no id means two spots
        async with open_websocket_url(f"ws://127.0.0.1:{second.http_port}/ws/firehose?since={ids[0]}") as ws:
            replay: list[dict[str, object]] = []
            with trio.fail_after(10):
                while len(replay) < 3:  # the replay, then the next tick's new spot
                    replay += json.loads(await ws.get_message())
        assert [s["id"] for s in replay] == [*ids[1:], new["id"]]
    telnet = await trio.open_tcp_stream("127.0.0.1", second.cluster_port)  # sh/dx is not empty either
    buf = bytearray()
    await read_until(telnet, b"login: ", buf)
    await telnet.send_all(b"g4xyz\r\n")
    await read_until(telnet, b">", buf)
    await telnet.send_all(b"sh/dx\r\n")
    shown = (await read_until(telnet, b"JA1XYZ", buf)).decode()  # newest first: the oldest comes last
    await telnet.aclose()
    assert all(call in shown for call in ("VK2ABC", "ZS6ABC", "PY2ABC")), shown
    second.shutdown.set()


async def test_a_since_from_another_life_gets_a_reset_message(app_config: config_mod.Config,
                                                              nursery: trio.Nursery) -> None:
    """The snapshot is gone (a new data dir): ids start again, and a client resuming with since=40 is
    told, then gets the new spots live."""
    handle = await _start(nursery, replace(app_config, data_dir=app_config.data_dir / "fresh"))
    user = await add_user(handle.db, "W1AW")
    token = await issue_token(handle.db, user["id"])
    async with open_websocket_url(f"ws://127.0.0.1:{handle.http_port}/ws/firehose?since=40") as ws:
        with trio.fail_after(10):
            reset = json.loads(await ws.get_message())
        assert reset == {"type": "reset", "since": 40, "last_id": 0}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{handle.http_port}",
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            r = await client.post("/api/spots", json={"dx": "JA1XYZ", "freq": 14025})
            body = (await client.get("/api/spots", params={"since": "40"})).json()
        assert body["reset"] is True and body["spots"] == []
        with trio.fail_after(10):
            live = json.loads(await ws.get_message())
        assert [s["id"] for s in live] == [r.json()["id"]] == [1]
    handle.shutdown.set()


CALLS = st.sampled_from(["JA1XYZ", "DL1ABC", "W1AW"])


@given(st.lists(st.tuples(CALLS, st.floats(1800, 30000), st.integers(0, 300)), max_size=30),
       st.binary(max_size=40))
def test_snapshot_decodes_to_what_was_encoded_and_junk_is_skipped(spots: list[tuple[str, float, int]],
                                                                  junk: bytes) -> None:
    ring = SpotRing()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for dx, khz, minutes in spots:
        ring.append(Spot("G4XYZ", round(khz, 1), dx, "cq" if minutes % 3 else "", now - timedelta(minutes=minutes), band="20m",
                         dxcc=339, cont="AS", cqz=25, snr=-3, skimmer=minutes % 2 == 0, source="rbn"), 0.0)
    data = encode_history(ring)
    last_id, decoded = decode_history(data + junk)
    assert last_id == ring.last_seq
    assert [(s.id, s.dx, s.freq, s.time, s.skimmer, s.source, s.snr) for s, _ in decoded] == [
        (e.spot.id, e.spot.dx, e.spot.freq, e.spot.time, e.spot.skimmer, e.spot.source, e.spot.snr)
        for e in ring.after(0)]
    assert [line for _, line in decoded] == [e.json for e in ring.after(0)]
    assert isinstance(decode_history(junk)[0], int)  # never raises, whatever the bytes


def test_a_missing_or_broken_file_restores_nothing(tmp_path: Path) -> None:
    assert decode_history(b"") == (0, [])
    assert decode_history(b'{"last_id": "x"}\n') == (0, [])
    assert decode_history(b'{"last_id": 7}\n{"id": 3, "dx": "W1AW"}\n') == (7, [])  # no time: skipped
