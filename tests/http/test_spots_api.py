"""GET/POST /api/spots: history from the ring with the firehose's filters, and HTTP ingress."""

from __future__ import annotations

from datetime import UTC, datetime

from hamsrv.model import Spot
from tests.api import Api


def publish(api: Api, dx: str, khz: float, band: str, cont: str) -> int:
    spot = Spot(spotter="G4XYZ", freq=khz, dx=dx, comment="", time=datetime.now(UTC), band=band, cont=cont)
    entry = api.state.hub.publish(spot)
    assert entry is not None
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
                              ({"colour": "red"}, "colour")):
            r = await client.get("/api/spots", params=params)
            assert r.status_code == 400 and r.json()["field"] == field, (params, r.text)


async def test_post_spot_needs_a_token_and_valid_fields(api: Api) -> None:
    async with api.client() as anonymous:
        assert (await anonymous.post("/api/spots", json={"dx": "IP0TRC", "freq": 14025})).status_code == 401
    async with api.client(api.token) as client:
        r = await client.post("/api/spots", json={"dx": "ip0trc", "freq": "14025.04", "comment": "CQ"})
        assert r.status_code == 201 and r.json()["spotter"] == "W1AW" and r.json()["freq"] == 14025.0
        for body, field in (({"dx": "IP0TRC", "freq": 0}, "freq"), ({"dx": "??", "freq": 7000}, "dx"),
                            ({"dx": "IP0TRC", "freq": 7000, "comment": "x" * 61}, "comment"),
                            ({"dx": "IP0TRC", "freq": 7000, "spotter": "K1ABC"}, "spotter")):
            r = await client.post("/api/spots", json=body)
            assert r.status_code == 400 and r.json()["field"] == field, (body, r.text)
