"""GET /api/propagation: 24 hourly MUFs for a path, the inputs used, storm label, clear 400s."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hamsrv import cty, propagation
from hamsrv.propagation import SolarReading
from tests.api import Api


async def test_needs_solar_data_or_flux(api: Api) -> None:
    async with api.client() as client:
        r = await client.get("/api/propagation", params={"from": "FN31", "to": "JO62"})
        assert r.status_code == 503 and "NOAA" in r.json()["error"]
        r = await client.get("/api/propagation", params={"from": "FN31", "to": "JO62", "flux": "150",
                                                         "date": "2026-12-03"})
        assert r.status_code == 200
        body = r.json()
    lat1, lon1 = propagation.locator_to_latlon("FN31")
    lat2, lon2 = propagation.locator_to_latlon("JO62")
    want = propagation.forecast(150, datetime(2026, 12, 3).date(), lat1, lon1, lat2, lon2)
    assert [h["muf"] for h in body["hours"]] == [h.muf for h in want]
    assert [h["hour"] for h in body["hours"]] == list(range(24))
    assert body["inputs"] == {"flux": 150.0, "ssn": 102.7, "kp": None, "time": None, "source": "request",
                              "stale": False}
    assert body["storm"] is False and 6000 < body["distance_km"] < 6500 and body["path"] == "short"
    noon = body["hours"][14]
    assert noon["best_band"] in noon["bands"] and noon["fot"] == round(0.85 * noon["muf"], 2)


async def test_uses_noaa_data_labels_storms_and_staleness(api: Api) -> None:
    measured = datetime.now(UTC) - timedelta(hours=5)

    async def latest() -> SolarReading:
        return SolarReading(120.0, 6.33, measured, "noaa")

    api.state.latest_solar = latest
    async with api.client() as client:
        body = (await client.get("/api/propagation", params={"from": "JO62qm", "to": "PM95"})).json()
        longer = (await client.get("/api/propagation", params={"from": "JO62qm", "to": "PM95",
                                                                "path": "long"})).json()
    assert body["inputs"]["source"] == "noaa" and body["inputs"]["stale"] is True
    assert body["inputs"]["time"] == measured.isoformat() and body["storm"] is True
    assert longer["distance_km"] > 30000 and longer["hours"] != body["hours"]


async def test_bad_requests_name_the_field(api: Api) -> None:
    async with api.client() as client:
        for params, field in (({"to": "JO62"}, "from"), ({"from": "FN31"}, "to"),
                              ({"from": "ZZ99", "to": "JO62"}, "from"), ({"from": "FN31", "to": "JO6"}, "to"),
                              ({"from": "FN31", "to": "JO62", "flux": "inf"}, "flux"),
                              ({"from": "FN31", "to": "JO62", "flux": "9" * 5000}, "flux"),
                              ({"from": "FN31", "to": "JO62", "flux": "150", "kp": "10"}, "kp"),
                              ({"from": "FN31", "to": "JO62", "flux": "150", "date": "2026-13-01"}, "date"),
                              ({"from": "FN31", "to": "JO62", "flux": "150", "path": "sideways"}, "path"),
                              ({"from": "FN31", "to": "JO62", "flux": "150", "fluxx": "1"}, "fluxx")):
            r = await client.get("/api/propagation", params=params)
            assert r.status_code == 400, (params, r.text)
            assert r.json()["field"] == field


async def test_to_a_callsigns_country(api: Api) -> None:
    """The page asks for the path to a spot's DX: a callsign is placed at its DXCC entity (cty.dat)."""
    api.state.cty = cty.load_default()
    async with api.client() as client:
        r = await client.get("/api/propagation", params={"from": "FN31", "to": "JA1XYZ", "flux": "120"})
        assert r.status_code == 200, r.text
        assert r.json()["to"] == "JA1XYZ (Japan)" and 10_000 < r.json()["distance_km"] < 12_000
        bad = await client.get("/api/propagation", params={"from": "FN31", "to": "QQ9QQQ", "flux": "120"})
        assert bad.status_code == 400 and bad.json()["field"] == "to"
