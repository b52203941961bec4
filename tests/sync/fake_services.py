"""Local HTTP servers (hypercorn, in the test's nursery) that behave like LoTW and eQSL.

One server answers both sites' paths. Each account decides how the service treats it:
`ok` (the real LoTW report; eQSL: its inbox), `empty`, `truncated`, `slow` (answers after `delay` s),
`down` (HTTP 503). A wrong password gets LoTW's login page or eQSL's "No such Username/Password" page.
Every request's query is recorded, so tests can see what hamsrv asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from tests.sync.samples import (
    EQSL_BAD_LOGIN_PAGE,
    EQSL_EMPTY_PAGE,
    LOTW_K9CTS,
    LOTW_LOGIN_PAGE,
    eqsl_built_page,
    eqsl_inbox_file,
    lotw_records,
    senders_view,
)


def empty_lotw_report(last_qsl: str) -> bytes:
    return (b"ARRL Logbook of the World Status Report\nGenerated at 2024-05-02 10:00:00\nfor w1aw\nQuery:\n"
            b"    QSL ONLY: YES\n\n<PROGRAMID:4>LoTW\n<APP_LoTW_LASTQSL:19>" + last_qsl.encode() +
            b"\n\n<APP_LoTW_NUMREC:1>0\n\n<eoh>\n<APP_LoTW_EOF>\n")


@dataclass
class Account:
    password: str
    behaviour: str = "ok"  # ok, empty, truncated, slow, down
    report: Path = LOTW_K9CTS  # what LoTW sends this account
    inbox: list[dict[str, str]] = field(default_factory=list)  # what eQSL sends this account
    page: bytes | None = None  # this page instead of what the service would answer


@dataclass
class FakeServices:
    url: str = ""
    lotw: dict[str, Account] = field(default_factory=dict)
    eqsl: dict[str, Account] = field(default_factory=dict)
    delay: float = 5.0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # eQSL's built .adi files by name

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        query = dict(parse_qsl(scope["query_string"].decode()))
        path = scope["path"]
        self.requests.append((path, query))
        status, body = await self.answer(path, query)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/html" if body.lstrip().startswith(b"<") else b"text/plain"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def answer(self, path: str, query: dict[str, str]) -> tuple[int, bytes]:
        if path == "/lotwuser/lotwreport.adi":
            account = self.lotw.get(query.get("login", ""))
            if account is None or account.password != query.get("password"):
                return 200, LOTW_LOGIN_PAGE
            return await self._behave(account, lambda: self._lotw_report(account, query), truncate=True)
        if path == "/qslcard/DownloadInBox.cfm":
            account = self.eqsl.get(query.get("UserName", ""))
            if account is None or account.password != query.get("Password"):
                return 200, EQSL_BAD_LOGIN_PAGE
            return await self._behave(account, lambda: self._eqsl_page(account, query), truncate=False)
        if path.startswith("/downloadedfiles/") and path[len("/downloadedfiles/"):] in self.files:
            return 200, self.files[path[len("/downloadedfiles/"):]]
        return 404, b"<html><body>Not found</body></html>"

    async def _behave(self, account: Account, good: Callable[[], bytes], truncate: bool) -> tuple[int, bytes]:
        if account.behaviour == "down":
            return 503, b"<html><body>Service Unavailable</body></html>"
        if account.behaviour == "slow":
            await trio.sleep(self.delay)
        body = account.page if account.page is not None else good()
        if account.behaviour == "truncated" and truncate:
            body = body[: len(body) * 2 // 3]
        return 200, body

    def _lotw_report(self, account: Account, query: dict[str, str]) -> bytes:
        whole = account.report.read_bytes()
        last = whole.split(b"<APP_LoTW_LASTQSL:19>")[1][:19].decode()
        if account.behaviour == "empty" or query.get("qso_qslsince", "") >= last:
            return empty_lotw_report(last)  # nothing confirmed since the last download
        return whole

    def _eqsl_page(self, account: Account, query: dict[str, str]) -> bytes:
        if account.behaviour == "empty" or not account.inbox or query.get("RcvdSince"):
            return EQSL_EMPTY_PAGE  # (this inbox receives nothing after the first download)
        name = f"{query['UserName'].lower()}{len(self.files)}"
        built = eqsl_inbox_file(account.inbox)
        self.files[name + ".adi"] = built[: len(built) * 2 // 3] if account.behaviour == "truncated" else built
        return eqsl_built_page(name)


def k9cts_inbox(count: int = 40) -> list[dict[str, str]]:
    """The first `count` QSOs of the real K9CTS LoTW report, as those stations' eQSLs to K9CTS."""
    return [senders_view(r) for r in lotw_records()[:count]]


async def start_fake_services(nursery: trio.Nursery, services: FakeServices) -> FakeServices:
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    binds = await nursery.start(lambda task_status: serve(services, config, task_status=task_status))  # type: ignore[arg-type]
    services.url = binds[0]
    return services
