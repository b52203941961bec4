"""NOAA SWPC: the sans-I/O parsers on the real files (both Kp shapes) and on generated ones, then the
job against a local HTTP server serving the real files, including the ways a server fails."""

from __future__ import annotations

import contextlib
import json
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from hamsrv.db.database import Database, conninfo_url
from hamsrv.sync import noaa
from hamsrv.sync.noaa import FormatError, parse_flux, parse_kp, parse_ssn
from hamsrv.sync.scheduler import PgStateStore, Scheduler, SyncError
from tests.api import Api
from tests.sync.authority import Authority
from tests.testdata import TESTDATA

SWPC = TESTDATA / "swpc"


def real(name: str) -> bytes:
    return (SWPC / name).read_bytes()


def as_objects(rows_file: bytes) -> bytes:
    """The 2026 object form of a Kp file (FACTS 6): each data row keyed by the old header."""
    rows = json.loads(rows_file)
    return json.dumps([dict(zip(rows[0], [float(v) if i else v for i, v in enumerate(r)], strict=True))
                       for r in rows[1:]]).encode()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# ---- parsers on the real files

def test_kp_array_of_arrays_real_file():
    reading = parse_kp(real("noaa-planetary-k-index.json"))
    assert reading == noaa.Reading(2.0, utc("2026-02-09 15:00"))


def test_kp_storm_file_and_its_object_form_agree():
    rows = parse_kp(real("noaa-planetary-k-index_202405_storm.json"))
    objects = parse_kp(as_objects(real("noaa-planetary-k-index_202405_storm.json")))
    assert rows == objects == noaa.Reading(2.67, utc("2024-05-13 15:00"))


def test_kp_object_form_shuffled_takes_the_latest():
    body = json.loads(as_objects(real("noaa-planetary-k-index.json")))
    random.Random(3).shuffle(body)
    assert parse_kp(json.dumps(body).encode()).time == utc("2026-02-09 15:00")


def test_flux_summary_object_real_file():
    assert parse_flux(real("10cm-flux_20240512.json")) == noaa.Reading(222.0, utc("2024-05-12 20:00"))


def test_flux_list_not_sorted_takes_the_latest_time_tag():
    body = [{"time_tag": "2021-03-14T20:00:00", "frequency": 2800, "flux": 78, "reporting_schedule": "Noon",
             "ninety_day_mean": 77, "rec_count": 90},
            {"time_tag": "2021-03-16T20:00:00", "frequency": 2800, "flux": 81},
            {"time_tag": "2021-03-15T20:00:00", "frequency": 2800, "flux": 99}]
    assert parse_flux(json.dumps(body).encode()) == noaa.Reading(81.0, utc("2021-03-16 20:00"))


def test_sunspot_number_real_file_skips_missing():
    assert parse_ssn(real("observed-solar-cycle-indices.json")) == noaa.Reading(196.5, utc("2024-07-01"))


@pytest.mark.parametrize("parser", [parse_kp, parse_flux, parse_ssn])
@pytest.mark.parametrize("body", [b"<html><body>Service Unavailable</body></html>", b"", b"{}", b"[]",
                                  b'[["a","b"],["1","2"]]', b"[1,2,3]", b'"text"', b"[" * 100000])
def test_parsers_refuse_junk_with_a_format_error(parser, body):
    with pytest.raises(FormatError):
        parser(body)


def test_html_body_is_named_as_such():
    with pytest.raises(FormatError, match="HTML"):
        parse_kp(b"<!DOCTYPE html><html>oops</html>")


# ---- parsers on generated files

moments = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)).map(
    lambda d: d.replace(microsecond=0))
kp_values = st.sampled_from([0.0, 0.33, 0.67, 1.0, 2.33, 5.0, 7.67, 9.0])


@given(st.dictionaries(moments, kp_values, min_size=1, max_size=40), st.booleans(), st.randoms())
def test_kp_latest_of_any_order_in_either_shape(readings, objects, rnd):
    items = list(readings.items())
    rnd.shuffle(items)
    if objects:
        body = [{"time_tag": t.isoformat(sep=" ") + ".000", "Kp": k, "a_running": 5, "station_count": 8}
                for t, k in items]
    else:
        body = [["time_tag", "Kp", "a_running", "station_count"]] + [
            [t.isoformat(sep=" ") + ".000", f"{k:.2f}", "5", "8"] for t, k in items]
    latest = max(readings)
    assert parse_kp(json.dumps(body).encode()) == noaa.Reading(readings[latest], latest.replace(tzinfo=UTC))


@given(st.dictionaries(moments, st.integers(50, 400), min_size=1, max_size=40), st.randoms())
def test_flux_latest_of_any_order(readings, rnd):
    items = list(readings.items())
    rnd.shuffle(items)
    body = [{"time_tag": t.isoformat(), "frequency": 2800, "flux": f} for t, f in items]
    latest = max(readings)
    assert parse_flux(json.dumps(body).encode()) == noaa.Reading(readings[latest], latest.replace(tzinfo=UTC))


@given(st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=20) | st.integers(),
                    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner,
                                                                                max_size=5), max_leaves=30))
def test_parsers_never_fail_otherwise_on_any_json(value):
    data = json.dumps(value).encode()
    for parser in (parse_kp, parse_flux, parse_ssn):
        try:
            reading = parser(data)
        except FormatError:
            continue
        assert reading.time.tzinfo is not None


@given(st.binary(max_size=300))
def test_parsers_never_fail_otherwise_on_any_bytes(data):
    for parser in (parse_kp, parse_flux, parse_ssn):
        with contextlib.suppress(FormatError):
            parser(data)


# ---- the job against a local SWPC

def swpc_with_real_files(authority: Authority) -> None:
    authority.serve_file(noaa.KP_PATH, real("noaa-planetary-k-index.json"), etag='"kp-1"')
    authority.serve_file(noaa.FLUX_PATHS[0], real("10cm-flux_20240512.json"),
                         last_modified="Sun, 12 May 2024 20:05:00 GMT")
    authority.serve_file(noaa.SSN_PATH, real("observed-solar-cycle-indices.json"), etag='"ssn-1"')
    # FLUX_PATHS[1] (the daily list) is left out: a 404 there is fine while the summary answers


@pytest.fixture
async def swpc(nursery: trio.Nursery) -> Authority:
    authority: Authority = await nursery.start(Authority().run)
    swpc_with_real_files(authority)
    return authority


def messages() -> tuple[list[str], callable]:  # type: ignore[valid-type]
    seen: list[str] = []
    return seen, seen.append


async def test_job_stores_all_three_and_then_gets_304s(db: Database, swpc: Authority):
    seen, progress = messages()
    summary = await noaa.sync(swpc.url, db, progress)
    assert summary == "kp 2, flux 222, ssn 196.5"
    body = await noaa.solar_json(db)
    assert body is not None
    assert body["kp"] == {"value": 2.0, "time": "2026-02-09T15:00:00+00:00"}
    assert body["flux"] == {"value": 222.0, "time": "2024-05-12T20:00:00+00:00"}
    assert body["ssn"] == {"value": 196.5, "time": "2024-07-01"}
    assert body["stale"] is False
    assert any("10cm-flux.json: 222" in m for m in seen)

    assert await noaa.sync(swpc.url, db, progress) == "unchanged (304)"
    conditional = [h for p, h in swpc.requests[-4:] if p != noaa.FLUX_PATHS[1]]
    assert all("if-none-match" in h or "if-modified-since" in h for h in conditional)


async def test_object_form_kp_is_read_too(db: Database, swpc: Authority):
    swpc.serve_file(noaa.KP_PATH, as_objects(real("noaa-planetary-k-index_202405_storm.json")))
    await noaa.sync(swpc.url, db, print)
    assert (await noaa.latest_reading(db)).kp == 2.67  # type: ignore[union-attr]


@pytest.mark.parametrize(("change", "expected"), [
    ({"status": 500}, "NOAA answered 500 Internal Server Error for /products/noaa-planetary-k-index.json"),
    ({"cut_after": 100}, "NOAA: the download broke off after 0.0 MB of 0.0 MB"),
    ({"content_type": "image/png"}, "NOAA sent image/png, not JSON, for /products/noaa-planetary-k-index.json"),
    ({"content_type": "text/html", "body": b"<html><body>Maintenance</body></html>"},
     "NOAA sent an HTML page (text/html), not JSON"),
    ({"body": b"<html><body>Maintenance</body></html>"}, "the Kp file is not JSON (an HTML page?)"),
])
async def test_failures_are_errors_in_words_and_keep_the_rest(db: Database, swpc: Authority, change, expected):
    route = swpc.routes[noaa.KP_PATH]
    for key, value in change.items():
        setattr(route, key, value)
    state = await Scheduler(PgStateStore(db)).run_once(noaa.make_job_for(swpc.url, db))
    assert state.status == "error" and state.error is not None
    assert state.error.startswith(expected), state.error
    body = await noaa.solar_json(db)
    assert body is not None and body["kp"] is None and body["flux"]["value"] == 222.0  # the rest was kept


async def test_unreachable_is_an_error_in_words(db: Database):
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connection refused
        with pytest.raises(SyncError, match=f"cannot reach NOAA at 127.0.0.1:{port}"):
            await noaa.sync(f"http://127.0.0.1:{port}", db, print)
    assert await noaa.solar_json(db) is None


async def test_stale_after_four_hours(db: Database, swpc: Authority):
    await noaa.sync(swpc.url, db, print)
    later = datetime.now(UTC) + timedelta(hours=4, minutes=1)
    assert (await noaa.solar_json(db, now=later))["stale"] is True  # type: ignore[index]
    assert (await noaa.solar_json(db, now=later - timedelta(minutes=2)))["stale"] is False  # type: ignore[index]


async def test_api_solar_and_propagation_use_the_stored_data(api: Api, db: Database, swpc: Authority):
    async with api.client() as client:
        empty = await client.get("/api/solar")
        assert empty.status_code == 503 and "noaa sync" in empty.json()["error"]
        api.state.latest_solar = lambda: noaa.latest_reading(db)
        await noaa.sync(swpc.url, db, print)
        solar = (await client.get("/api/solar")).json()
        assert solar["flux"]["value"] == 222.0 and solar["kp"]["value"] == 2.0
        prop = (await client.get("/api/propagation", params={"from": "FN31", "to": "JO62"})).json()
    assert prop["inputs"]["flux"] == 222.0 and prop["inputs"]["kp"] == 2.0 and prop["inputs"]["source"] == "noaa"


async def test_cli_sync_noaa_once(db_url: str, swpc: Authority, tmp_path: Path):
    env = {"HAMSRV_DATABASE_URL": conninfo_url(db_url), "HAMSRV_NOAA_URL": swpc.url, "HAMSRV_DATA_DIR": str(tmp_path),
           "PATH": "/usr/bin:/bin"}
    ok = await trio.run_process([sys.executable, "-m", "hamsrv.cli", "sync", "noaa", "--once"], env=env,
                                capture_stdout=True, capture_stderr=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert b"noaa: /products/noaa-planetary-k-index.json: 2 at 2026-02-09 15:00" in ok.stderr
    assert b"noaa: ok; next scheduled run" in ok.stderr
    swpc.routes[noaa.KP_PATH].status = 500
    swpc.routes[noaa.KP_PATH].etag = None
    bad = await trio.run_process([sys.executable, "-m", "hamsrv.cli", "sync", "noaa", "--once"],
                                 env={**env, "HAMSRV_NOAA_URL": swpc.url + "/nothing"},
                                 capture_stdout=True, capture_stderr=True, check=False)
    assert bad.returncode == 1
    assert b"failed: NOAA answered 404" in bad.stderr
    unknown = await trio.run_process([sys.executable, "-m", "hamsrv.cli", "sync", "qrz", "--once"], env=env,
                                     capture_stdout=True, capture_stderr=True, check=False)
    assert unknown.returncode == 2 and b"no sync named 'qrz'" in unknown.stderr
