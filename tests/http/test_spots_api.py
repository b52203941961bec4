"""GET/POST /api/spots: history from the ring with the firehose's filters, and HTTP ingress."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import trio

from hamsrv.http.spots import SPOTS_SCAN
from hamsrv.model import Spot
from tests.api import Api


def publish(api: Api, dx: str, khz: float, band: str, cont: str) -> int:
    spot = Spot(spotter="G4XYZ", freq=khz, dx=dx, comment="", time=datetime.now(UTC), band=band, cont=cont)
    entry = api.state.hub.publish(spot)
    assert entry is not None
    api.state.hub.flush_tick()  # what the hub's ticker does every 50 ms: the firehose has sent it
    return entry.seq


async def test_history_filters_and_cursor(api: Api) -> None:
    first = publish(api, "JA1XYZ", 14025.0, "20m", "AS")
    publish(api, "DL1ABC", 7010.0, "40m", "EU")
    third = publish(api, "VK2ABC", 14030.0, "20m", "OC")
    async with api.client() as client:
        latest = (await client.get("/api/spots", params={"limit": "2"})).json()
        assert [s["dx"] for s in latest["spots"]] == ["DL1ABC", "VK2ABC"] and latest["last_id"] == third
        after = (await client.get("/api/spots", params={"since": str(first), "band": "20m"})).json()
        assert [s["id"] for s in after["spots"]] == [third]
        both = (await client.get("/api/spots", params={"cont": "AS,OC"})).json()
        assert [s["dx"] for s in both["spots"]] == ["JA1XYZ", "VK2ABC"]
        for params, field in (({"band": "21m"}, "band"), ({"cont": "XX"}, "cont"), ({"since": "-1"}, "since"),
                              ({"colour": "red"}, "colour"), ({"limit": "9" * 5000}, "limit"),
                              ({"since": "1" * 4400}, "since")):
            r = await client.get("/api/spots", params=params)
            assert r.status_code == 400 and r.json()["field"] == field, (params, r.text)


async def test_post_spot_needs_a_token_and_valid_fields(api: Api) -> None:
    async with api.client() as anonymous:
        assert (await anonymous.post("/api/spots", json={"dx": "IP0TRC", "freq": 14025})).status_code == 401
    async with api.client(api.token) as client:
        r = await client.post("/api/spots", json={"dx": "ip0trc", "freq": "14025.04", "comment": "CQ"})
        assert r.status_code == 201 and r.json()["spotter"] == "W1AW" and r.json()["freq"] == 14025.0
        for body, field in (({"dx": "IP0TRC", "freq": 0}, "freq"), ({"dx": "??", "freq": 7000}, "dx"),
                            ({"dx": "IP0TRC", "freq": "1e999"}, "freq"), ({"dx": "IP0TRC", "freq": 10**400}, "freq"),
                            ({"dx": "IP0TRC", "freq": 7000, "comment": "x" * 61}, "comment"),
                            ({"dx": "IP0TRC", "freq": 7000, "spotter": "K1ABC"}, "spotter")):
            r = await client.post("/api/spots", json=body)
            assert r.status_code == 400 and r.json()["field"] == field, (body, r.text)


async def test_post_spot_reads_frequencies_as_the_cluster_port_does(api: Api) -> None:
    """Issue 14: MHz or kHz understood alike, amateur bands only, band and mode filled in."""
    async with api.client(api.token) as client:
        for freq, khz, band, mode in ((14.195, 14195.0, "20m", "SSB"), ("14195", 14195.0, "20m", "SSB"),
                                      (7.02, 7020.0, "40m", "CW"), (136.5, 136.5, "2190m", None),
                                      ("144.174", 144174.0, "2m", "FT8")):
            r = await client.post("/api/spots", json={"dx": f"DL{int(khz) % 10}XYZ", "freq": freq})
            assert r.status_code == 201, (freq, r.text)
            assert (r.json()["freq"], r.json()["band"], r.json().get("mode")) == (khz, band, mode), r.json()
        for freq in (1, "1", 3000, 15000.0, 0.5, "14.195.1"):
            r = await client.post("/api/spots", json={"dx": "IP0TRC", "freq": freq})
            assert r.status_code == 400 and r.json()["field"] == "freq", (freq, r.text)


async def test_history_shows_only_what_the_firehose_has_sent(api: Api) -> None:
    """A client resuming the WebSocket with `since=last_id` then gets no spot twice."""
    sent = publish(api, "JA1XYZ", 14025.0, "20m", "AS")
    api.state.hub.publish(Spot(spotter="G4XYZ", freq=7010.0, dx="DL1ABC", comment="", time=datetime.now(UTC)))
    async with api.client() as client:
        body = (await client.get("/api/spots")).json()
    assert [s["id"] for s in body["spots"]] == [sent] and body["last_id"] == sent


async def test_a_filter_that_matches_nothing_scans_a_bounded_window(api: Api) -> None:
    """Issue 10: such a request walked (and copied) all 200,000 ring entries on the event loop."""
    hub = api.state.hub
    for i in range(SPOTS_SCAN + 5000):
        hub.publish(Spot(spotter="G4XYZ", freq=14000.0 + (i % 300), dx=f"K{i % 10}A{i}", comment="",
                         time=datetime.now(UTC), band="20m", cont="EU"))
    hub.flush_tick()
    async with api.client() as client:
        latest = (await client.get("/api/spots", params={"band": "2m"})).json()
        assert latest["spots"] == [] and latest["last_id"] == hub.ring.last_seq
        first = (await client.get("/api/spots", params={"band": "2m", "since": "0"})).json()
        assert first["spots"] == [] and first["scanned_to"] == SPOTS_SCAN  # go on from here
        rest = (await client.get("/api/spots", params={"band": "2m", "since": str(first["scanned_to"])})).json()
        assert rest["spots"] == [] and rest["scanned_to"] == hub.ring.last_seq
        few = (await client.get("/api/spots", params={"since": "0", "limit": "3"})).json()
        assert [s["id"] for s in few["spots"]] == [1, 2, 3] and few["scanned_to"] == 3


async def post_raw(api: Api, head: str, body_parts: list[bytes]) -> bytes:
    """POST over a plain socket, sending body parts until the server answers; its status line."""
    stream = await trio.open_tcp_stream("127.0.0.1", api.port)
    await stream.send_all((f"POST /api/spots HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {api.token}\r\n"
                           f"Content-Type: application/json\r\n{head}\r\n").encode())
    answer = b""
    async with trio.open_nursery() as nursery:
        async def send() -> None:
            with contextlib.suppress(trio.BrokenResourceError):
                for part in body_parts:
                    await stream.send_all(part)
        nursery.start_soon(send)
        with trio.fail_after(20):
            while b"\r\n" not in answer:
                answer += await stream.receive_some(4096)
        nursery.cancel_scope.cancel()
    await stream.aclose()
    return answer.split(b"\r\n")[0]


async def test_json_bodies_are_small(api: Api) -> None:
    """Issue 10: every route took the 512 MiB upload limit; JSON routes now stop at their own small
    limit, whether the client announces the size or streams chunks, and answer before reading the rest."""
    status = await post_raw(api, f"Content-Length: {4 * api.state.max_json_bytes}\r\n", [])
    assert status.startswith(b"HTTP/1.1 413"), status
    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    status = await post_raw(api, "Transfer-Encoding: chunked\r\n", [chunk] * 64)
    assert status.startswith(b"HTTP/1.1 413"), status
    async with api.client(api.token) as client:
        for junk in (b"[1, 2]", b"not json", b"[" * 100_000):
            r = await client.post("/api/spots", content=junk)
            assert r.status_code == 400, junk[:20]
