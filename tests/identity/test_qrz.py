"""QRZ biography sign-in against a local HTTP server serving QRZ-shaped callsign pages: the happy path,
and a clear answer for a page without the code, 404, a timeout, a huge page and no server at all."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from hamsrv.db.database import Database
from hamsrv.identity.codes import new_qrz_code
from hamsrv.identity.policy import Policy
from hamsrv.identity.qrz import page_has_code
from tests.api import Api, running_api
from tests.test_serve import free_port

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{call} - John Q Operator @ QRZ.com</title></head>
<body><div id="topbar"><a href="/">QRZ.com</a> <form action="/lookup"><input name="tquery"></form></div>
<div id="csdata"><span class="csignm hamcall">{call}</span><p class="m0">John Q Operator<br>Newington, CT
<br>USA</p><table id="detbox"><tr><td>Grid Square</td><td>FN31pr</td></tr></table></div>
<div id="biodata"><h3>Biography</h3><p>Licensed in 1978. QRV on HF CW and FT8.</p>{bio}</div>
<div id="footer">Copyright QRZ LLC</div></body></html>
"""


class QrzPages:
    """What the local "QRZ" serves: pages by lower-case callsign; `slow` and `huge` misbehave."""

    def __init__(self) -> None:
        self.bios: dict[str, str] = {}
        self.requests: list[str] = []


@pytest.fixture
def qrz() -> Iterator[tuple[str, QrzPages]]:
    pages = QrzPages()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            pages.requests.append(self.path)
            call = self.path.rsplit("/", 1)[-1]
            if call == "n0slow":
                time.sleep(3)
            if call == "n0huge":
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                for _ in range(3 * 1024):  # 3 MiB, no Content-Length
                    self.wfile.write(b"<p>" + b"x" * 1017 + b"</p>\n")
                return
            if call not in pages.bios:
                self.send_error(404)
                return
            body = PAGE.format(call=call.upper(), bio=pages.bios[call]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/db/", pages
    server.shutdown()
    server.server_close()


@pytest.fixture
async def api(db: Database, qrz: tuple[str, QrzPages], nursery: trio.Nursery) -> AsyncIterator[Api]:
    async with running_api(db, nursery, identity=Policy(qrz_url=qrz[0], qrz_timeout=1.0)) as served:
        yield served


async def start(client: httpx.AsyncClient, call: str) -> dict:
    response = await client.post("/api/auth/qrz", json={"callsign": call})
    assert response.status_code == 201, response.text
    return response.json()


async def test_from_nothing_to_a_signed_in_page_session(api: Api, qrz: tuple[str, QrzPages]):
    base, pages = qrz
    pages.bios["w1xyz"] = ""
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        issued = await start(client, "w1xyz")
        assert issued["code"].startswith("HAMS-") and issued["page"] == base + "w1xyz"
        early = await client.post("/api/auth/qrz/verify", json={"callsign": "W1XYZ", "claim": issued["claim"]})
        assert early.status_code == 409 and f"the code {issued['code']} is not on W1XYZ's QRZ page" in early.json()["error"]
        pages.bios["w1xyz"] = f"<p>hamsrv: {issued['code']}</p>"
        wrong = await client.post("/api/auth/qrz/verify", json={"callsign": "W1XYZ", "claim": "guess"})
        assert wrong.status_code == 403 and wrong.json()["field"] == "claim"
        done = await client.post("/api/auth/qrz/verify", json={"callsign": "W1XYZ", "claim": issued["claim"]})
        assert done.status_code == 200, done.text
        assert (done.json()["callsign"], done.json()["trust"]) == ("W1XYZ", "low")
        me = (await client.get("/api/me")).json()
        assert (me["callsign"], me["trust"], me["method"]) == ("W1XYZ", "low", "qrz")
        again = await client.post("/api/auth/qrz/verify", json={"callsign": "W1XYZ", "claim": issued["claim"]})
        assert again.status_code == 403  # used up
    assert pages.requests == ["/db/w1xyz", "/db/w1xyz"]  # the wrong claim never fetched the page
    assert (await api.state.db.fetchrow("SELECT trust_level FROM users WHERE callsign = 'W1XYZ'"))["trust_level"] == 1


async def test_someone_who_only_read_the_page_cannot_claim_it(api: Api, qrz: tuple[str, QrzPages]):
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as owner:
        issued = await start(owner, "W1XYZ")
    qrz[1].bios["w1xyz"] = issued["code"]
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as reader:
        for claim in (issued["code"], "", "x" * 300):
            response = await reader.post("/api/auth/qrz/verify", json={"callsign": "W1XYZ", "claim": claim})
            assert response.status_code in (400, 403)
    assert await api.state.db.fetch("SELECT * FROM sessions") == []


@pytest.mark.parametrize(("call", "status", "message"), [
    ("n0page", 404, "QRZ has no page at"),
    ("n0slow", 504, "QRZ did not answer within 1 s"),
    ("n0huge", 502, "larger than 2 MiB: not a QRZ callsign page"),
])
async def test_each_failure_has_its_own_answer(api: Api, call: str, status: int, message: str):
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        issued = await start(client, call)
        response = await client.post("/api/auth/qrz/verify", json={"callsign": call, "claim": issued["claim"]})
    assert response.status_code == status
    assert message in response.json()["error"]


async def test_no_server_at_all(db: Database, nursery: trio.Nursery):
    unused = f"http://127.0.0.1:{free_port()}/db/"
    async with running_api(db, nursery, identity=Policy(qrz_url=unused)) as api, \
            httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        issued = await start(client, "W1XYZ")
        response = await client.post("/api/auth/qrz/verify", json={"callsign": "W1XYZ", "claim": issued["claim"]})
    assert response.status_code == 502 and "could not fetch" in response.json()["error"]


@given(st.binary(max_size=2000), st.binary(max_size=2000))
def test_page_has_code_finds_it_anywhere_and_only_there(before: bytes, after: bytes) -> None:
    code = new_qrz_code()
    assert page_has_code(before + code.lower().encode() + after, code)
    assert page_has_code(before + code.encode() + after, code)
    assert page_has_code(before + after, code) == (code.lower().encode() in (before + after).lower())
