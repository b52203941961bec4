"""FCC ULS: the callbook sync against a local HTTP server serving zips of the real ULS files (weekly and
daily), including every way the download or the file can go wrong; the previous callbook must survive."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from hamsrv.db.database import Database
from hamsrv.sync import fcc
from hamsrv.sync.scheduler import JobState, PgStateStore, Scheduler
from hamsrv.sync.uls import CopyRows, UlsFormatError, record_type
from tests.api import Api
from tests.sync.authority import Authority
from tests.testdata import TESTDATA

ULS = TESTDATA / "fcc_uls"
ZIP = "application/zip"
WEEKLY_DATE = "Sun, 03 May 2026 12:00:00 GMT"
MONDAY = "Tue, 05 May 2026 06:00:00 GMT"
TUESDAY = "Wed, 06 May 2026 06:00:00 GMT"


def uls(name: str) -> bytes:
    return (ULS / name).read_bytes()


def make_zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out.getvalue()


def weekly_files(**changes: bytes) -> dict[str, bytes]:
    files = {name: uls(name) for name in ("AM.dat", "CO.dat", "EN.dat", "HD.dat", "HS.dat", "LA.dat", "SC.dat")}
    files["EN.dat"] = files["EN.dat"].replace(b"|||||885 MAIN ST|", b"||||linda@example.org|885 MAIN ST|")
    files.update(changes)
    return files


@pytest.fixture
async def fcc_site(nursery: trio.Nursery) -> Authority:
    site: Authority = await nursery.start(Authority().run)
    site.serve_file(fcc.FULL_PATH, make_zip(weekly_files()), content_type=ZIP, etag='"w1"',
                    last_modified=WEEKLY_DATE)
    return site


async def run(db: Database, site: Authority) -> JobState:
    return await Scheduler(PgStateStore(db)).run_once(fcc.make_job_for(site.url, db), progress=print)


async def count(db: Database) -> int:
    row = await db.fetchrow("SELECT count(*) AS n FROM callbook")
    return row["n"]  # type: ignore[index]


# ---- the line copier (sans-I/O)

def test_record_type_of_zip_names():
    assert [record_type(n) for n in ("EN.dat", "l_amat/hd.DAT", "HS.dat", "counts", "AM.dat.bak")] == \
        ["EN", "HD", None, None, None]


def test_copy_rows_of_the_real_file_in_pieces():
    data = uls("EN.dat")
    rows = CopyRows("EN")
    out = b"".join(rows.feed(data[i:i + 97]) for i in range(0, len(data), 97)) + rows.close()
    assert out == data and rows.lines == 34 and rows.bad == 0


def test_copy_rows_escapes_what_copy_text_treats_specially():
    line = b"EN|1|||W1AW|L||A\\B\tC\r|" + b"|" * 20
    assert CopyRows("EN").feed(line + b"\r\n") == b"EN|1|||W1AW|L||A\\\\B\\tC\\r|" + b"|" * 20 + b"\n"


def test_wrong_columns_are_refused_at_the_first_line():
    with pytest.raises(UlsFormatError, match="EN.dat has the wrong columns"):
        CopyRows("EN").feed(uls("AM.dat"))
    with pytest.raises(UlsFormatError, match="expected an HD record with at least 9"):
        CopyRows("HD").feed(b"HD|1|2|3\n")


def test_a_few_odd_lines_are_skipped_many_refuse_the_file():
    rows = CopyRows("AM")
    good = uls("AM.dat") * 4  # 136 lines
    assert rows.feed(good + b"continued comment text\n") and rows.close() == b""
    assert rows.bad == 1 and rows.lines == 137 and "line 137" in rows.first_bad
    many = CopyRows("AM")
    many.feed(uls("AM.dat") + b"junk\n" * 3)
    with pytest.raises(UlsFormatError, match="3 of 37 lines have the wrong columns"):
        many.close()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(uls("HD.dat").splitlines(keepends=True)), max_size=30),
       st.lists(st.integers(1, 3000), max_size=6))
def test_copy_rows_any_pieces_give_the_same_rows(lines, cuts):
    data = b"".join(lines)
    whole = CopyRows("HD")
    expected = whole.feed(data) + whole.close()
    pieces = CopyRows("HD")
    out, start = b"", 0
    for cut in sorted(c % (len(data) + 1) for c in cuts) + [len(data)]:
        out += pieces.feed(data[start:cut])
        start = cut
    assert out + pieces.close() == expected == data


@given(st.binary(max_size=400))
def test_copy_rows_any_bytes_rows_or_format_error(data):
    rows = CopyRows("AM")
    try:
        out = rows.feed(data) + rows.close()
    except UlsFormatError:
        return
    assert out.count(b"\n") == rows.lines - rows.bad


# ---- the weekly file

async def test_weekly_import_and_lookup(db: Database, fcc_site: Authority):
    state = await run(db, fcc_site)
    assert state.status == "ok", state.error
    assert state.summary == "34 licences from the weekly file; 0 daily files applied (0 licences changed)"
    assert await count(db) == 34
    row = await db.fetchrow("SELECT * FROM callbook WHERE callsign = 'KK9HIU'")
    assert row is not None
    assert (row["name"], row["operator_class"], row["license_status"], str(row["grant_date"]),
            str(row["expire_date"]), row["city"], row["state"], row["frn"], row["email"]) == \
        ("LINDA Q MILLER", "E", "A", "2023-01-31", "2033-04-27", "RIVERSIDE", "OH", "0004144385",
         "linda@example.org")
    again = await run(db, fcc_site)
    assert again.summary is not None and again.summary.startswith("weekly file unchanged")
    assert fcc_site.requests[-8][1].get("if-none-match") == '"w1"'  # the weekly request, before 7 dailies


async def test_api_callbook_never_shows_the_email(api: Api, db: Database, fcc_site: Authority):
    await run(db, fcc_site)
    async with api.client() as client:
        found = await client.get("/api/callbook/kk9hiu")
        missing = await client.get("/api/callbook/K1ZZZ")
        bad = await client.get("/api/callbook/not a call!")
    assert found.status_code == 200
    assert found.json() == {
        "callsign": "KK9HIU", "name": "LINDA Q MILLER", "class": "E", "class_name": "Extra", "status": "A",
        "status_name": "active", "granted": "2023-01-31", "expires": "2033-04-27", "city": "RIVERSIDE",
        "state": "OH", "source": "FCC ULS", "updated_at": found.json()["updated_at"]}
    assert "example.org" not in found.text and "email" not in found.text
    assert missing.status_code == 404 and "K1ZZZ" in missing.json()["error"]
    assert bad.status_code == 400 and bad.json()["field"] == "call"


# ---- daily files

def daily_zip(hd: bytes, en: bytes = b"", am: bytes = b"") -> bytes:
    files = {"HD.dat": hd}
    if en:
        files["EN.dat"] = en
    if am:
        files["AM.dat"] = am
    return make_zip(files)


def line_of(name: str, call: str) -> bytes:
    return next(line for line in uls(name).splitlines(keepends=True) if line.split(b"|")[4] == call.encode())


async def test_daily_files_apply_in_order_once(db: Database, fcc_site: Authority):
    await run(db, fcc_site)
    hd = line_of("HD.dat", "KK9HIU")
    # Monday: KK9HIU upgraded to a new expiry; Tuesday (served under "sun", so name order is not date
    # order): moved to another city. Both newer than the weekly file.
    fcc_site.serve_file("/daily/l_am_mon.zip", daily_zip(hd.replace(b"04/27/2033", b"04/27/2035")),
                        content_type=ZIP, etag='"mon"', last_modified=MONDAY)
    fcc_site.serve_file("/daily/l_am_sun.zip", daily_zip(
        hd.replace(b"04/27/2033", b"04/27/2036"),
        en=line_of("EN.dat", "KK9HIU").replace(b"|RIVERSIDE|", b"|SPRINGFIELD|")),
        content_type=ZIP, etag='"sun"', last_modified=TUESDAY)
    # an old daily file from before the weekly one: already contained in it, never applied
    fcc_site.serve_file("/daily/l_am_sat.zip", daily_zip(hd.replace(b"|A|HA|", b"|C|HA|")),
                        content_type=ZIP, etag='"sat"', last_modified="Sat, 02 May 2026 06:00:00 GMT")
    state = await run(db, fcc_site)
    assert state.status == "ok", state.error
    assert state.summary == "weekly file unchanged; 2 daily files applied (2 licences changed)"
    row = await db.fetchrow("SELECT * FROM callbook WHERE callsign = 'KK9HIU'")
    assert row is not None
    assert str(row["expire_date"]) == "2036-04-27"  # Tuesday's, applied after Monday's
    assert row["city"] == "SPRINGFIELD" and row["license_status"] == "A"
    assert row["name"] == "LINDA Q MILLER" and row["operator_class"] == "E"  # kept: no AM in the diffs
    again = await run(db, fcc_site)
    assert again.summary == "weekly file unchanged; 0 daily files applied (0 licences changed)"


async def test_a_new_weekly_file_replaces_the_callbook(db: Database, fcc_site: Authority):
    await run(db, fcc_site)
    hd = b"".join(line for line in uls("HD.dat").splitlines(keepends=True) if b"|KK9HIU|" not in line)
    fcc_site.serve_file(fcc.FULL_PATH, make_zip(weekly_files(**{"HD.dat": hd})), content_type=ZIP,
                        etag='"w2"', last_modified="Sun, 10 May 2026 12:00:00 GMT")
    state = await run(db, fcc_site)
    assert state.summary is not None and state.summary.startswith("33 licences"), state.summary
    assert await db.fetchrow("SELECT 1 AS x FROM callbook WHERE callsign = 'KK9HIU'") is None


# ---- failures keep the previous callbook

def truncated(data: bytes) -> bytes:
    return data[:len(data) // 2]


def corrupted(data: bytes) -> bytes:
    broken = bytearray(data)
    for i in range(200, 260):
        broken[i] ^= 0x55
    return bytes(broken)


FAILURES: list[tuple[dict[str, object], str]] = [
    ({"status": 500}, "FCC answered 500 Internal Server Error for /complete/l_amat.zip"),
    ({"status": 503}, "FCC answered 503 Service Unavailable"),
    ({"content_type": "text/html", "body": b"<html><body><h1>Maintenance</h1></body></html>"},
     "FCC sent an HTML page (text/html), not a zip file"),
    ({"body": b"<!DOCTYPE html><html><body>Access denied</body></html>"}, "not a zip file (it starts with"),
    ({"content_type": "application/json"}, "FCC sent application/json, not a zip file"),
    ({"cut_after": 1000, "ranges": True}, "FCC: the download broke off after 0.0 MB of 0.0 MB"),
    ({"cut_after": 1000, "ranges": False}, "FCC: the download broke off after 0.0 MB of 0.0 MB"),
    ({"transform": truncated}, "zip truncated at 0.0 MB"),
    ({"transform": corrupted}, "corrupt zip"),
    ({"files": {"EN.dat": uls("AM.dat")}}, "EN.dat has the wrong columns"),
    ({"files": {"HD.dat": b"HD|1|2\nHD|3|4\n"}}, "HD.dat has the wrong columns"),
    ({"files": {"HD.dat": None}}, "the zip holds no HD.dat"),
]


@pytest.mark.parametrize(("change", "expected"), FAILURES)
async def test_a_bad_weekly_file_keeps_the_old_callbook(db: Database, fcc_site: Authority, change, expected):
    await run(db, fcc_site)
    before = await db.fetch("SELECT * FROM callbook ORDER BY callsign")
    route = fcc_site.routes[fcc.FULL_PATH]
    route.etag, route.last_modified = '"w2"', "Sun, 10 May 2026 12:00:00 GMT"  # a new weekly file ...
    if "files" in change:
        files = {k: v for k, v in weekly_files(**change.pop("files")).items() if v is not None}  # type: ignore[arg-type]
        route.body = make_zip(files)
    transform: Callable[[bytes], bytes] | None = change.pop("transform", None)  # type: ignore[assignment]
    if transform:
        route.body = transform(route.body)
    for key, value in change.items():
        setattr(route, key, value)
    state = await run(db, fcc_site)
    assert state.status == "error" and state.error is not None
    assert expected in state.error, state.error
    assert await db.fetch("SELECT * FROM callbook ORDER BY callsign") == before  # ... that changed nothing
    tables = await db.fetch("SELECT relname FROM pg_class WHERE relname LIKE 'callbook%%' AND relkind = 'r'")
    assert [t["relname"] for t in tables] == ["callbook"]  # no staging table left behind


async def test_a_broken_download_is_resumed(db: Database, fcc_site: Authority):
    route = fcc_site.routes[fcc.FULL_PATH]
    route.cut_after, route.cut_times = len(route.body) // 3, 2  # breaks twice, then the rest arrives
    seen: list[str] = []
    state = await Scheduler(PgStateStore(db)).run_once(fcc.make_job_for(fcc_site.url, db), progress=seen.append)
    assert state.status == "ok", state.error
    assert await count(db) == 34
    resumed = [m for m in seen if m.startswith("resuming at")]
    assert len(resumed) == 2, seen
    ranges = [h.get("range") for path, h in fcc_site.requests if path == fcc.FULL_PATH]
    assert ranges[0] is None and ranges[1] == f"bytes={len(route.body) // 3}-"


async def test_a_broken_download_without_range_support_is_read_again(db: Database, fcc_site: Authority):
    route = fcc_site.routes[fcc.FULL_PATH]
    route.cut_after, route.cut_times, route.ranges = len(route.body) // 2, 1, False
    seen: list[str] = []
    state = await Scheduler(PgStateStore(db)).run_once(fcc.make_job_for(fcc_site.url, db), progress=seen.append)
    assert state.status == "ok", state.error
    assert await count(db) == 34
    assert any("no Range support" in m for m in seen)


async def test_a_bad_daily_file_is_an_error_and_applies_nothing(db: Database, fcc_site: Authority):
    await run(db, fcc_site)
    fcc_site.serve_file("/daily/l_am_mon.zip", truncated(daily_zip(line_of("HD.dat", "KK9HIU"))),
                        content_type=ZIP, etag='"mon"', last_modified=MONDAY)
    state = await run(db, fcc_site)
    assert state.status == "error"
    assert state.error is not None and state.error.startswith("daily l_am_mon.zip: zip truncated"), state.error
