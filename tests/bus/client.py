"""A page on the user bus, for the tests: connect with a token, read messages of one type."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from trio_websocket import WebSocketConnection, open_websocket_url

SAFETY = 30.0  # seconds; only guards against a hung test


class BusPage:
    def __init__(self, ws: WebSocketConnection, hello: dict[str, Any]):
        self.ws, self.hello = ws, hello

    async def send(self, **message: Any) -> None:
        await self.ws.send_message(json.dumps(message))

    async def next(self, kind: str, timeout: float = SAFETY) -> dict[str, Any]:
        """The next message of type `kind` (others are skipped)."""
        with trio.fail_after(timeout):
            while True:
                message: dict[str, Any] = json.loads(await self.ws.get_message())
                if message["type"] == kind:
                    return message

    async def nothing_of(self, kind: str, wait: float = 1.0) -> None:
        """Fails when a message of type `kind` arrives within `wait` seconds."""
        with trio.move_on_after(wait):
            message = await self.next(kind)
            raise AssertionError(f"unexpected {kind} message {message}")


@asynccontextmanager
async def bus_page(port: int, token: str, **options: Any) -> AsyncIterator[BusPage]:
    async with open_websocket_url(f"ws://127.0.0.1:{port}/websocket?token={token}", **options) as ws:
        with trio.fail_after(SAFETY):
            hello = json.loads(await ws.get_message())
        assert hello["type"] == "hello", hello
        yield BusPage(ws, hello)
