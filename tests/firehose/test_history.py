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
from hamsrv.firehose.history import (
    CRASH_SKIP,
    FILE_NAME,
    decode_history,
    encode_history,
    keep_history,
    restore,
)
from hamsrv.firehose.hub import Hub
from hamsrv.firehose.ring import SpotRing
from hamsrv.identity.tokens import add_user, issue_token
from hamsrv.model import Spot
from tests.served import start_serve
from tests.test_abuse import token_for
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
    last_id, clean, decoded = decode_history(data + junk)
    assert last_id == ring.last_seq and not clean
    assert [(s.id, s.dx, s.freq, s.time, s.skimmer, s.source, s.snr) for s, _ in decoded] == [
        (e.spot.id, e.spot.dx, e.spot.freq, e.spot.time, e.spot.skimmer, e.spot.source, e.spot.snr)
        for e in ring.after(0)]
    assert [line for _, line in decoded] == [e.json for e in ring.after(0)]
    assert isinstance(decode_history(junk)[0], int)  # never raises, whatever the bytes


def test_a_missing_or_broken_file_restores_nothing(tmp_path: Path) -> None:
    assert decode_history(b"") == (0, False, [])
    assert decode_history(b'{"last_id": "x"}\n') == (0, False, [])
    assert decode_history(b'[7]\n') == (0, False, [])
    assert decode_history(b'{"last_id": 7}\n{"id": 3, "dx": "W1AW"}\n') == (7, False, [])  # no time: skipped
    assert decode_history(b'{"last_id": 7, "clean": true}\n') == (7, True, [])


async def test_after_an_unclean_stop_restored_spots_are_numbered_past_the_lost_ids(tmp_path: Path) -> None:
    ring = SpotRing()
    for dx in ("JA1XYZ", "VK2ABC"):
        ring.append(Spot("G4XYZ", 14025.0, dx, "", datetime.now(UTC)), 0.0)
    for clean, first_id in ((True, 1), (False, 2 + CRASH_SKIP + 1)):
        path = tmp_path / f"{clean}.jsonl"
        path.write_bytes(encode_history(ring, clean=clean))
        hub = Hub(SpotRing())
        assert restore(hub, path) == 2
        restored = hub.ring.after(0)
        assert [e.seq for e in restored] == [first_id, first_id + 1]
        assert [json.loads(e.json)["id"] for e in restored] == [first_id, first_id + 1]  # encoded anew
        assert [e.spot.dx for e in restored] == ["JA1XYZ", "VK2ABC"]
        live = hub.announced_seq
        assert hub.ring.resumable(0, live) and hub.ring.resumable(first_id, live)
        assert hub.ring.resumable(1, live) is clean  # an id of the earlier life: a reset, unless clean
        assert hub.ring.resumable(hub.ring.floor, live) and not hub.ring.resumable(live + 1, live)


async def test_ids_given_out_before_a_crash_are_never_given_again(db_url: str, tmp_path: Path) -> None:
    """kill -9: the spots given out since the last save are lost, their ids are not reused, and a client
    resuming from one of them is told (reset) instead of getting other spots under old numbers."""
    served = start_serve(tmp_path, db_url, HAMSRV_SPOT_HISTORY_SECONDS="3600")  # only the start-up save
    try:
        feed = await trio.open_tcp_stream("127.0.0.1", served.cluster_port)
        await feed.send_all(b"".join(b"DX de G4XYZ:     14025.0  %s  cq  1200Z\r\n" % dx
                                     for dx in (b"JA1XYZ", b"VK2ABC", b"ZS6ABC")))
        async with httpx.AsyncClient(base_url=served.url) as client:
            with trio.fail_after(10):
                while len(before := (await client.get("/api/spots")).json()["spots"]) < 3:
                    await trio.sleep(0.05)
        assert [s["id"] for s in before] == [1, 2, 3]
        served.proc.kill()
        served.proc.wait()
    finally:
        served.stop()
    served = start_serve(tmp_path, db_url)
    try:
        async with httpx.AsyncClient(base_url=served.url) as client:
            token = await token_for(db_url, tmp_path)
            new = (await client.post("/api/spots", json={"dx": "PY2ABC", "freq": 7020},
                                     headers={"Authorization": f"Bearer {token}"})).json()
            assert new["id"] == CRASH_SKIP + 1  # past the last save (id 0) by far: never 1, 2 or 3 again
            assert (await client.get("/api/spots", params={"since": "2"})).json()["reset"] is True
            assert "reset" not in (await client.get("/api/spots", params={"since": str(new["id"] - 1)})).json()
        async with open_websocket_url(f"{served.url.replace('http', 'ws')}/ws/firehose?since=2") as ws:
            with trio.fail_after(10):
                assert json.loads(await ws.get_message())["type"] == "reset"
    finally:
        assert served.stop() == 0



async def test_two_crashes_in_a_row_never_reuse_an_id(tmp_path: Path) -> None:
    """The start-up save records where this life's ids begin: a second crash before any periodic save
    still numbers past every id of the life in between."""
    path = tmp_path / FILE_NAME
    ring = SpotRing()
    ring.append(Spot("G4XYZ", 14025.0, "JA1XYZ", "", datetime.now(UTC)), 0.0)
    path.write_bytes(encode_history(ring))  # a periodic save, then a crash
    async with trio.open_nursery() as nursery:
        first = Hub(SpotRing())
        await nursery.start(keep_history, first, tmp_path, 3600)
        left_by_a_crash = path.read_bytes()  # all a second crash, right now, would leave behind
        entry = first.publish(Spot("G4XYZ", 7010.0, "VK2ABC", "", datetime.now(UTC)))
        nursery.cancel_scope.cancel()
    assert entry is not None and entry.seq > ring.last_seq
    path.write_bytes(left_by_a_crash)
    second = Hub(SpotRing())
    restore(second, path)
    assert second.ring.floor > entry.seq
