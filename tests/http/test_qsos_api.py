"""The logbook API against a real PostgreSQL: CRUD, paging, filters, bad input, other users' QSOs."""

from __future__ import annotations

from tests.api import Api

FT8 = {"call": "dl1abc", "qso_date": "20240501", "time_on": "1305", "band": "20m", "mode": "FT8",
       "freq": "14.074", "rst_sent": "-10", "NAME": "Hans"}


async def test_create_get_patch_delete(api: Api) -> None:
    async with api.client(api.token) as client:
        r = await client.post("/api/qsos", json=FT8)
        assert r.status_code == 201, r.text
        qso = r.json()
        assert qso["call"] == "DL1ABC" and qso["start_at"] == "2024-05-01T13:05:00Z"
        assert qso["band"] == "20m" and qso["freq"] == 14.074 and qso["extra"] == {"NAME": "Hans"}
        assert r.headers["Location"] == f"/api/qsos/{qso['id']}"

        r = await client.patch(f"/api/qsos/{qso['id']}", json={"lotw_qsl_rcvd": "Y", "name": None})
        assert r.status_code == 200, r.text
        assert r.json()["lotw_qsl_rcvd"] == "Y" and r.json()["extra"] == {}
        assert r.json()["call"] == "DL1ABC"  # untouched fields survive a PATCH

        assert (await client.get(f"/api/qsos/{qso['id']}")).json()["lotw_qsl_rcvd"] == "Y"
        assert (await client.delete(f"/api/qsos/{qso['id']}")).status_code == 204
        assert (await client.get(f"/api/qsos/{qso['id']}")).status_code == 404


async def test_duplicate_is_409_with_the_existing_id(api: Api) -> None:
    async with api.client(api.token) as client:
        first = (await client.post("/api/qsos", json=FT8)).json()
        again = await client.post("/api/qsos", json={**FT8, "time_on": "130559"})  # same minute
    assert again.status_code == 409 and again.json()["id"] == first["id"]


async def test_another_users_qso_is_404_not_403(api: Api) -> None:
    async with api.client(api.token) as mine:
        qso = (await mine.post("/api/qsos", json=FT8)).json()
    async with api.client(api.other_token) as theirs:
        for method in ("GET", "PATCH", "DELETE"):
            r = await theirs.request(method, f"/api/qsos/{qso['id']}", json={"band": "40m"})
            assert r.status_code == 404, method
        assert (await theirs.get("/api/qsos")).json()["qsos"] == []
    async with api.client(api.token) as mine:
        assert (await mine.get(f"/api/qsos/{qso['id']}")).json()["band"] == "20m"


async def test_missing_or_bad_token_is_401(api: Api) -> None:
    async with api.client() as anonymous:
        assert (await anonymous.get("/api/qsos")).status_code == 401
    async with api.client("hamsrv_not-a-real-token") as wrong:
        r = await wrong.post("/api/qsos", json=FT8)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"


async def test_bad_input_names_the_field(api: Api) -> None:
    cases = [
        ({**FT8, "qso_date": "20241341"}, "qso_date"),
        ({**FT8, "time_on": "2561"}, "time_on"),
        ({**FT8, "band": "21m"}, "band"),
        ({**FT8, "freq": "fourteen"}, "freq"),
        ({k: v for k, v in FT8.items() if k != "call"}, "call"),
        ({**FT8, "call": "<script>"}, "call"),
        ({**FT8, "bad field!": "x"}, "bad field!"),
        ({**FT8, "rst_sent": ["59"]}, "rst_sent"),
        ({**FT8, "name": "a\u0000b"}, "name"),  # PostgreSQL text cannot hold NUL: a 400, not a 503
        ({**FT8, "mode": "X" * 65}, "mode"),
    ]
    async with api.client(api.token) as client:
        for body, field in cases:
            r = await client.post("/api/qsos", json=body)
            assert r.status_code == 400, (body, r.text)
            assert r.json()["field"] == field, (body, r.json())
        r = await client.post("/api/qsos", content=b"not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "JSON object" in r.json()["error"]
        r = await client.get("/api/qsos", params={"limit": "0"})
        assert r.status_code == 400 and r.json()["field"] == "limit"
        r = await client.get("/api/qsos", params={"from": "yesterday"})
        assert r.status_code == 400 and r.json()["field"] == "from"
        r = await client.get("/api/qsos", params={"cursor": "!!"})
        assert r.status_code == 400 and r.json()["field"] == "cursor"


async def test_paging_and_filters(api: Api) -> None:
    async with api.client(api.token) as client:
        for minute in range(25):
            body = {**FT8, "call": f"K{minute % 3}ABC", "time_on": f"13{minute:02d}",
                    "band": "20m" if minute % 2 else "40m", "freq": None}
            assert (await client.post("/api/qsos", json=body)).status_code == 201
        seen: list[int] = []
        params: dict[str, str] = {"limit": "10"}
        while True:
            page = (await client.get("/api/qsos", params=params)).json()
            seen += [q["id"] for q in page["qsos"]]
            if not page["next"]:
                break
            params["cursor"] = page["next"]
        assert len(seen) == len(set(seen)) == 25
        starts = [q["start_at"] for q in (await client.get("/api/qsos", params={"limit": "100"})).json()["qsos"]]
        assert starts == sorted(starts, reverse=True)
        only = (await client.get("/api/qsos", params={"band": "20M", "call": "k1abc"})).json()["qsos"]
        assert only and all(q["band"] == "20m" and q["call"] == "K1ABC" for q in only)
        window = (await client.get("/api/qsos", params={"from": "2024-05-01T13:10:00Z",
                                                        "to": "2024-05-01T13:15:00Z"})).json()["qsos"]
        assert len(window) == 5


async def test_patch_into_another_qsos_key_is_409(api: Api) -> None:
    async with api.client(api.token) as client:
        first = (await client.post("/api/qsos", json=FT8)).json()
        second = (await client.post("/api/qsos", json={**FT8, "time_on": "1400"})).json()
        r = await client.patch(f"/api/qsos/{second['id']}", json={"time_on": "1305"})
        assert r.status_code == 409 and "same call" in r.json()["error"]
        assert (await client.get(f"/api/qsos/{second['id']}")).json()["start_at"] == "2024-05-01T14:00:00Z"
        assert first["id"] != second["id"]
