"""QRZ biography sign-in: fetch the callsign's QRZ page and look for the HAMS- code the user pasted
into the biography. Every way the fetch can go wrong has its own answer."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import trio

MAX_PAGE = 2 << 20  # a QRZ callsign page is ~100-300 KB; past this it is not one


class QrzError(Exception):
    """Why the page could not be checked; `status` is the HTTP answer to give the user."""

    def __init__(self, message: str, status: int = 502):
        super().__init__(message)
        self.status = status


def page_url(base: str, callsign: str) -> str:
    return base + quote(callsign.lower(), safe="")


def page_has_code(page: bytes, code: str) -> bool:
    """Whether the code appears in the page (case-insensitively: editors may change case)."""
    return code.lower().encode() in page.lower()


async def fetch_page(url: str, timeout: float, max_bytes: int = MAX_PAGE) -> bytes:
    page = bytearray()
    with trio.move_on_after(timeout) as waited:
        try:
            async with httpx.AsyncClient(timeout=timeout, follow_redirects=True,
                                         headers={"User-Agent": "hamsrv sign-in check"}) as client, \
                    client.stream("GET", url) as response:
                if response.status_code == 404:
                    raise QrzError(f"QRZ has no page at {url} (404): is the callsign right?", 404)
                if response.status_code != 200:
                    raise QrzError(f"QRZ answered HTTP {response.status_code} for {url}; try again later")
                async for chunk in response.aiter_bytes():
                    page += chunk
                    if len(page) > max_bytes:
                        raise QrzError(f"the page at {url} is larger than {max_bytes >> 20} MiB: "
                                       "not a QRZ callsign page")
        except httpx.HTTPError as exc:
            raise QrzError(f"could not fetch {url}: {exc or type(exc).__name__}") from exc
    if waited.cancelled_caught:
        raise QrzError(f"QRZ did not answer within {timeout:g} s; try again later", 504)
    return bytes(page)
