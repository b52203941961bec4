"""POST /api/imports, GET /api/imports/{id}, the export routes and /ws/imports, through the real
listener, app, job runner and database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from hamsrv.db.database import Database
from hamsrv.http.common import KEY_REUSED
from hamsrv.ingest.jobs import JobRunner
from tests import testdata
from tests.api import Api, running_api

TESTDATA = testdata.TESTDATA / "adif"
UPLOAD_LIMIT = 2 << 20


@pytest.fixture
async def server(db: Database, nursery: trio.Nursery) -> AsyncIterator[Api]:
    runner = JobRunner(db, batch_records=200, poll_interval=0.05)
    async with running_api(db, nursery, imports=runner, max_upload_bytes=UPLOAD_LIMIT) as served:
        yield served


async def wait_done(client: httpx.AsyncClient, location: str) -> dict[str, Any]:
    with trio.fail_after(30):
        while True:
            job = (await client.get(location)).json()
            if job["status"] in ("done", "failed"):
                return job
            await trio.sleep(0.03)


async def test_raw_upload_is_stored_then_imported(server: Api):
    data = (TESTDATA / "pyadif_latin1.adi").read_bytes()
    async with server.client(server.token) as client:
        response = await client.post("/api/imports?filename=latin1.adi", content=data)
        assert response.status_code == 202
        assert response.json()["status"] == "queued"
        job = await wait_done(client, response.headers["Location"])
    assert (job["records_read"], job["inserted"], job["duplicates"], job["rejected"]) == (5, 2, 0, 3)
    assert [(r["record"], r["field"], r["reason"]) for r in job["rejects"]] == [
        (3, "CALL", "missing"), (4, "CALL", "missing"), (5, "CALL", "missing")]
    assert (job["filename"], job["format"], job["size_bytes"]) == ("latin1.adi", "adi", len(data))


async def test_multipart_upload_with_merge(server: Api):
    lotw = (TESTDATA / "lotw_detailed_single.adi").read_bytes()
    async with server.client(server.token) as client:
        plain = {"CALL": "NR0Q", "QSO_DATE": "20210615", "TIME_ON": "1117", "BAND": "30M", "MODE": "FT8"}
        assert (await client.post("/api/qsos", json=plain)).status_code == 201
        response = await client.post("/api/imports?merge=true", data={"note": "x"},
                                     files={"file": ("lotwreport.adi", lotw, "application/octet-stream")})
        assert response.status_code == 202, response.text
        job = await wait_done(client, response.headers["Location"])
        assert (job["format"], job["size_bytes"], job["merged"], job["inserted"]) == ("adi", len(lotw), 1, 0)
        assert job["filename"] == "lotwreport.adi"  # issue 14: the multipart part's filename is kept
        [qso] = (await client.get("/api/qsos")).json()["qsos"]
        assert qso["lotw_qsl_rcvd"] == "Y"


async def test_large_multipart_upload_and_a_malformed_one(server: Api):
    big = (TESTDATA / "qrz_logbook_m0nom_4567.adi").read_bytes()[:UPLOAD_LIMIT - 4096]  # reads > 64 KiB
    async with server.client(server.token) as client:
        response = await client.post("/api/imports", files={"file": ("log.adi", big, "text/plain")})
        assert response.status_code == 202, response.text
        job = await wait_done(client, response.headers["Location"])
        assert job["size_bytes"] == len(big)
        broken = b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.adi\"\r\n\r\n<CALL:4>W1AW"
        response = await client.post("/api/imports", content=broken,
                                     headers={"Content-Type": "multipart/form-data; boundary=xyz"})
        assert response.status_code == 400 and "malformed" in response.json()["error"], response.text


async def test_adx_upload(server: Api):
    async with server.client(server.token) as client:
        response = await client.post("/api/imports", content=(TESTDATA / "adif_spec_sample_userdef.adx").read_bytes())
        job = await wait_done(client, response.headers["Location"])
    assert (job["format"], job["inserted"], job["status"]) == ("adx", 2, "done")


@pytest.mark.parametrize(("body", "status", "message"), [
    (b'{"call": "W1AW"}', 400, "not an ADIF file"),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 300, 400, "not an ADIF file"),
    (b"", 400, "empty"),
    (b"<CALL:4>W1AW<EOR>" * (UPLOAD_LIMIT // 17 + 1), 413, "larger than"),
], ids=["json", "png", "empty", "too-large"])
async def test_bad_uploads_are_refused_and_leave_no_job(server: Api, body: bytes, status: int, message: str):
    async with server.client(server.token) as client:
        response = await client.post("/api/imports", content=body)
        assert response.status_code == status
        assert message in response.json()["error"]
    async with server.client(server.token) as client:  # a refused body may leave the first connection unusable
        assert (await client.get("/api/imports")).json() == {"imports": []}


async def test_chunked_upload_over_the_limit_is_refused(server: Api):
    async def body() -> AsyncIterator[bytes]:
        for _ in range(UPLOAD_LIMIT // 4096 + 2):
            yield b"<CALL:4>W1AW<EOR>".ljust(4096, b" ")

    async with server.client(server.token) as client:
        response = await client.post("/api/imports", content=body())
        assert response.status_code == 413


async def test_jobs_are_owner_scoped(server: Api):
    async with server.client(server.token) as client:
        response = await client.post("/api/imports", content=(TESTDATA / "hamrs_pota.adi").read_bytes())
        location = response.headers["Location"]
        await wait_done(client, location)
    async with server.client(server.other_token) as other:
        assert (await other.get(location)).status_code == 404
        assert (await other.get("/api/imports")).json() == {"imports": []}
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        assert (await anonymous.post("/api/imports", content=b"<EOR>")).status_code == 401


async def test_idempotency_key_gives_the_same_job(server: Api):
    data = (TESTDATA / "adifmaster_ft8.adi").read_bytes()
    async with server.client(server.token) as client:
        first = await client.post("/api/imports", content=data, headers={"Idempotency-Key": "upload-1"})
        again = await client.post("/api/imports", content=data, headers={"Idempotency-Key": "upload-1"})
        other = await client.post("/api/imports", content=data, headers={"Idempotency-Key": "upload-2"})
        assert first.status_code == again.status_code == other.status_code == 202
        assert first.json()["id"] == again.json()["id"] != other.json()["id"]
        job = await wait_done(client, first.headers["Location"])
        second = await wait_done(client, other.headers["Location"])
        assert (job["inserted"], second["inserted"], second["duplicates"]) == (126, 0, 126)
        assert len((await client.get("/api/imports")).json()["imports"]) == 2
        assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
        bad = await client.post("/api/imports", content=data, headers={"Idempotency-Key": "x" * 201})
        assert bad.status_code == 400 and bad.json()["field"] == "Idempotency-Key"
        # the same key with other options, or with another file, is a 422 (IETF Idempotency-Key draft), not
        # the old job (issue 14: another file under a used key got the first job, silently)
        reused = await client.post("/api/imports?merge=true", content=data, headers={"Idempotency-Key": "upload-1"})
        assert reused.status_code == 422 and reused.json()["field"] == "Idempotency-Key", reused.text
        other_file = (TESTDATA / "hamrs_pota.adi").read_bytes()
        for upload in ({"content": other_file}, {"files": {"file": ("log.adi", other_file)}}):
            reused = await client.post("/api/imports", headers={"Idempotency-Key": "upload-1"}, **upload)
            assert reused.status_code == 422, reused.text
            assert reused.json() == {"error": KEY_REUSED, "field": "Idempotency-Key"}
        assert len((await client.get("/api/imports")).json()["imports"]) == 2


async def test_a_retried_multipart_upload_is_the_same_request_whatever_its_boundary(server: Api):
    """The fingerprint covers the file as spooled, not the multipart wrapping (a new boundary per try)."""
    data = (TESTDATA / "adifmaster_ft8.adi").read_bytes()
    async with server.client(server.token) as client:
        ids = set()
        for boundary in ("first-try", "second-try"):
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"ft8.adi\"\r\n\r\n"
                    .encode() + data + f"\r\n--{boundary}--\r\n".encode())
            response = await client.post("/api/imports", content=body, headers={
                "Idempotency-Key": "multi", "Content-Type": f"multipart/form-data; boundary={boundary}"})
            assert response.status_code == 202, response.text
            ids.add(response.json()["id"])
        assert len(ids) == 1


async def test_websocket_pushes_progress_to_the_owner(server: Api):
    data = (TESTDATA / "wsjtx_300rc1_m7pxz.adi").read_bytes()
    url = f"ws://127.0.0.1:{server.port}/ws/imports?token={server.token}"
    async with open_websocket_url(url) as ws, server.client(server.token) as client:
        job_id = (await client.post("/api/imports", content=data)).json()["id"]
        events: list[dict[str, Any]] = []
        with trio.fail_after(30):
            while not events or events[-1]["status"] != "done":
                events.append(json.loads(await ws.get_message()))
    assert {e["id"] for e in events} == {job_id}
    assert any(e["status"] == "running" and 0 < e["records_read"] < 1700 for e in events)
    assert (events[-1]["records_read"], events[-1]["inserted"], events[-1]["duplicates"]) == (1700, 1691, 1)
    # the result names the duplicate, as the running events do from the batch that found it (issue 14)
    assert events[-1]["duplicate_records"] == [DUPLICATE_IN_WSJTX]
    assert events[-2]["duplicate_records"] == [DUPLICATE_IN_WSJTX] and events[-2]["status"] == "running"


# records 640 and 641 of the file are one QSO (LA7HJA, 23:07:15 and 23:07:00 the same minute)
DUPLICATE_IN_WSJTX = {"record": 641, "call": "LA7HJA", "start": "2026-01-01T23:07:00Z", "band": "30m", "mode": "FT8"}


async def test_summary_names_duplicates_and_a_merge_counts_up_to_date(server: Api):
    """Issue 14: the first duplicates with record numbers, like rejects; a merge says how many records
    were already up to date; every record counted once."""
    data = (TESTDATA / "wsjtx_300rc1_m7pxz.adi").read_bytes()
    async with server.client(server.token) as client:
        plain = await wait_done(client, (await client.post("/api/imports", content=data)).headers["Location"])
        again = await wait_done(client, (await client.post("/api/imports?merge=true", content=data)).headers["Location"])
    counted = ("inserted", "duplicates", "merged", "up_to_date", "rejected")
    assert [plain[k] for k in counted] == [1691, 1, 0, 0, 8]
    assert plain["duplicate_records"] == [DUPLICATE_IN_WSJTX]
    # the merge: nothing new, nothing to change; the repeated QSO is in one batch (the later record
    # wins, the earlier is the duplicate) or in two (then both are up to date)
    assert (again["inserted"], again["merged"], again["rejected"]) == (0, 0, 8)
    assert again["up_to_date"] + again["duplicates"] == 1692 and again["up_to_date"] >= 1691
    for job in (plain, again):
        assert job["records_read"] == 1700 == sum(job[k] for k in counted)


async def test_an_import_fills_dxcc_country_continent_and_zone_from_cty(server: Api):
    """Issue 14: as for a QSO sent to the API; an explicit DXCC in the file is kept."""
    data = (b"<CALL:6>DL1ABC<QSO_DATE:8>20240501<TIME_ON:4>1305<BAND:3>20m<MODE:3>FT8<EOR>\n"
            b"<CALL:5>K1ABC<QSO_DATE:8>20240501<TIME_ON:4>1306<BAND:3>20m<MODE:3>FT8<DXCC:1>1<EOR>\n")
    async with server.client(server.token) as client:
        job = await wait_done(client, (await client.post("/api/imports", content=data)).headers["Location"])
        assert job["inserted"] == 2, job
        qsos = {q["call"]: q for q in (await client.get("/api/qsos")).json()["qsos"]}
    german = qsos["DL1ABC"]
    assert (german["dxcc"], german["country"], german["cont"], german["cqz"]) == (230, "Fed. Rep. of Germany", "EU", "14")
    assert qsos["K1ABC"]["dxcc"] == 1


async def test_websocket_needs_a_token(server: Api):
    with pytest.raises(ConnectionRejected) as refused:
        async with open_websocket_url(f"ws://127.0.0.1:{server.port}/ws/imports?token=hamsrv_nope"):
            pass
    # issue 14: a JSON body as on every other refusal (it was a 403 with an empty body)
    assert refused.value.status_code == 401
    assert json.loads(refused.value.body or b"{}")["error"].startswith("sign in, or send a valid token")


async def test_export_streams_adi_and_adx(server: Api):
    async with server.client(server.token) as client:
        response = await client.post("/api/imports", content=(TESTDATA / "qlog_all_fields_example.adi").read_bytes())
        await wait_done(client, response.headers["Location"])
        adi = await client.get("/api/export.adi")
        adx = await client.get("/api/export.adx")
        later = await client.get("/api/export.adi?since=2030-01-01")
        assert (await client.get("/api/export.adi?since=soon")).status_code == 400
    assert adi.status_code == adx.status_code == 200
    assert adi.headers["Content-Disposition"] == 'attachment; filename="W1AW.adi"'
    assert adi.content.count(b"<EOR>") == 1 and b"<PROGRAMID:6>hamsrv" in adi.content
    assert adx.content.startswith(b"<?xml") and adx.content.count(b"<RECORD>") == 1
    assert adx.content.endswith(b"</RECORDS>\n</ADX>\n")
    assert later.content.count(b"<EOR>") == 0
