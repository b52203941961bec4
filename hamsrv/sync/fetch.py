"""Outbound HTTP for the syncs: conditional GETs whose every failure becomes a SyncError in words.

"FCC answered 503", "NOAA sent an HTML page (text/html), not JSON", "the download broke off after
41.2 MB", "cannot reach services.swpc.noaa.gov: ..." -- the message is what /api/sync shows.
ETag and Last-Modified of each URL are kept in the job's `sync_state.details` so an unchanged file is
answered 304 and not downloaded again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from hamsrv import __name__ as _package
from hamsrv.sync.scheduler import SyncError

USER_AGENT = f"{_package}/0.1 (amateur-radio server; timed sync)"
TIMEOUT = httpx.Timeout(60.0, connect=15.0)  # per read/connect; the job's own timeout bounds the whole run

Validators = dict[str, str]  # {"etag": ..., "last_modified": ...}


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=TIMEOUT, headers={"User-Agent": USER_AGENT}, follow_redirects=True)


def megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class DownloadBroken(SyncError):
    """The connection broke off in the middle of a body (it may be resumed with a Range request)."""

    def __init__(self, message: str, received: int):
        super().__init__(message)
        self.received = received


@dataclass
class Answer:
    """A response whose status and type were checked; `not_modified` for a 304."""

    response: httpx.Response
    not_modified: bool

    @property
    def validators(self) -> Validators:
        found = {"etag": self.response.headers.get("ETag"),
                 "last_modified": self.response.headers.get("Last-Modified")}
        return {k: v for k, v in found.items() if v}


def conditional_headers(validators: Validators | None) -> dict[str, str]:
    headers = {}
    if validators and validators.get("etag"):
        headers["If-None-Match"] = validators["etag"]
    if validators and validators.get("last_modified"):
        headers["If-Modified-Since"] = validators["last_modified"]
    return headers


def check(response: httpx.Response, authority: str, kinds: tuple[str, ...], what: str) -> None:
    """Raise a SyncError unless `response` is a 2xx/304 whose Content-Type is one of `kinds`."""
    if response.status_code == 304:
        return
    if response.status_code >= 400 or response.status_code < 200:
        raise SyncError(f"{authority} answered {response.status_code} {response.reason_phrase} for "
                        f"{urlsplit(str(response.url)).path}".rstrip())
    ctype = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if ctype not in kinds:
        if ctype in ("text/html", "application/xhtml+xml"):
            raise SyncError(f"{authority} sent an HTML page ({ctype}), not {what}, for "
                            f"{urlsplit(str(response.url)).path}")
        raise SyncError(f"{authority} sent {ctype or 'no content type'}, not {what}, for "
                        f"{urlsplit(str(response.url)).path}")


@asynccontextmanager
async def get(http: httpx.AsyncClient, url: str, *, authority: str, kinds: tuple[str, ...], what: str,
              validators: Validators | None = None, headers: dict[str, str] | None = None,
              ) -> AsyncIterator[Answer]:
    """A streamed GET, checked; the body is read by the caller (see `read_all`, `chunks`)."""
    try:
        async with http.stream("GET", url, headers={**conditional_headers(validators), **(headers or {})}) as r:
            check(r, authority, kinds, what)
            yield Answer(r, r.status_code == 304)
    except httpx.TimeoutException as exc:
        raise SyncError(f"{authority} did not answer in time ({type(exc).__name__}) for {urlsplit(url).path}") \
            from None
    except (httpx.ConnectError, httpx.UnsupportedProtocol) as exc:
        raise SyncError(f"cannot reach {authority} at {urlsplit(url).netloc}: {exc}") from None
    except httpx.HTTPError as exc:
        raise SyncError(f"{authority}: {type(exc).__name__}: {exc}") from None


async def chunks(answer: Answer, authority: str) -> AsyncIterator[bytes]:
    """The body as it arrives; a connection that breaks off, or a body shorter than its
    Content-Length, is a SyncError saying how far it got."""
    got = 0
    expected = answer.response.headers.get("Content-Length")
    try:
        async for chunk in answer.response.aiter_bytes():
            got += len(chunk)
            yield chunk
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        of = f" of {megabytes(int(expected))}" if expected and expected.isdecimal() else ""
        raise DownloadBroken(f"{authority}: the download broke off after {megabytes(got)}{of} ({exc})", got) \
            from None


async def read_all(answer: Answer, authority: str, limit: int) -> bytes:
    data = bytearray()
    async for chunk in chunks(answer, authority):
        data += chunk
        if len(data) > limit:
            raise SyncError(f"{authority}: the answer is larger than {megabytes(limit)}")
    return bytes(data)
