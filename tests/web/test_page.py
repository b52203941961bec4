"""The web page in a real headless Chromium, driven over the DevTools protocol with trio-websocket."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from hamsrv.model import Spot

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--remote-debugging-port=0"]


class Page:
    def __init__(self, ws: WebSocketConnection):
        self.ws, self.ids = ws, itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self.ids)
        await self.ws.send_message(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            reply = json.loads(await self.ws.get_message())
            if reply.get("id") == ident:
                assert "error" not in reply, reply
                return dict(reply["result"])

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 15) -> Any:
        with trio.fail_after(timeout):
            while not (value := await self.evaluate(expression)):
                await trio.sleep(0.1)
        return value


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is not installed (scripts/install-test-deps installs it)"
    profile = tmp_path / "profile"
    proc = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        with trio.fail_after(30):
            while not port_file.exists() or not port_file.read_text().strip():
                await trio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        async with httpx.AsyncClient() as client:
            targets = (await client.get(f"http://127.0.0.1:{port}/json/list")).json()
        target = next(t for t in targets if t["type"] == "page")
        async with open_websocket_url(target["webSocketDebuggerUrl"], max_message_size=16 << 20) as ws:
            yield Page(ws)
    finally:
        proc.kill()
        proc.wait()


def spot(dx: str, khz: float) -> Spot:
    return Spot(spotter="G4XYZ", freq=khz, dx=dx, comment="cq", time=datetime.now(UTC).replace(second=0))


async def test_page_shows_history_then_live_spots_and_filters_by_band(running: Any, page: Page) -> None:
    running.hub.publish(spot("JA1XYZ", 14025.0))
    await page.call("Page.navigate", url=f"http://127.0.0.1:{running.http_port}/")
    assert await page.wait_for("document.getElementById('status').textContent === 'live'")
    await page.wait_for("document.querySelectorAll('#spots tbody tr').length === 1")
    running.hub.publish(spot("VK2ABC", 7010.0))
    await page.wait_for("document.querySelectorAll('#spots tbody tr').length === 2")
    rows = await page.evaluate("[...document.querySelectorAll('#spots tbody tr')]"
                               ".map(r => [...r.cells].map(c => c.textContent))")
    assert rows[0][2] == "VK2ABC" and rows[0][4] == "40m" and rows[0][3] == "Australia"
    assert rows[1][2] == "JA1XYZ" and rows[1][1] == "14025.0" and rows[1][7] == "G4XYZ"

    await page.evaluate("const b = document.getElementById('band'); b.value = '20m';"
                        " b.dispatchEvent(new Event('change'))")
    await page.wait_for("document.querySelectorAll('#spots tbody tr').length === 0")
    running.hub.publish(spot("ZS6DEF", 7012.0))  # 40 m: filtered out by the server
    running.hub.publish(spot("PY2ABC", 14030.0))
    await page.wait_for("document.querySelectorAll('#spots tbody tr').length === 1")
    assert await page.evaluate("document.querySelector('#spots tbody tr').cells[2].textContent") == "PY2ABC"


async def test_the_relay_pairing_token_survives_a_reload(running: Any, page: Page) -> None:
    """Typed (or pasted) and then reloaded without leaving the field: the token is still there."""
    await page.call("Page.navigate", url=f"http://127.0.0.1:{running.http_port}/")
    await page.wait_for("document.readyState === 'complete'")
    await page.evaluate("document.getElementById('relay-settings').open = true;"
                        " document.getElementById('relay-token').focus()")
    await page.call("Input.insertText", text="pairing-token-123")
    await page.call("Page.reload")
    await page.wait_for("document.readyState === 'complete' && !!document.getElementById('relay-token')")
    assert await page.wait_for("document.getElementById('relay-token').value") == "pairing-token-123"
