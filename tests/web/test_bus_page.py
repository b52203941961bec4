"""The user bus on the page in Chromium: a cluster announcement shows up in #notices, and the page's
talk reaches the telnet user (signed in by the session cookie, as a browser is)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import trio
from playwright.sync_api import Page, expect

from hamsrv.db.database import Database
from hamsrv.identity.sessions import COOKIE, start_session
from hamsrv.identity.tokens import add_user
from tests.bus.test_bus import PROMPT
from tests.firehose.telnet import Telnet
from tests.web.browser import in_browser, screenshot


async def test_cluster_announcement_on_the_page_and_a_talk_back(running: Any, db: Database) -> None:
    session = await start_session(db, (await add_user(db, "W1AW"))["id"], "email", None, timedelta(hours=1))
    telnet = await Telnet.login(running.cluster_port, "G4ABC", PROMPT)
    url = f"http://127.0.0.1:{running.http_port}/"

    def scenario(page: Page, server: Any) -> None:
        page.context.add_cookies([{"name": COOKIE, "value": session, "url": url}])
        page.goto(url)
        notices = page.locator("#notices")
        expect(notices).to_contain_text("bus: signed in as W1AW")
        trio.from_thread.run(telnet.command, "announce full 10m FT8 open to VK")
        expect(notices).to_contain_text("To ALL de G4ABC: 10m FT8 open to VK")
        page.fill("#notices input[name=to]", "G4ABC")
        page.fill("#notices input[name=text]", "heard you on 28.074")
        page.press("#notices input[name=text]", "Enter")
        assert trio.from_thread.run(telnet.line_with, b"W1AW") == b"G4ABC de W1AW: heard you on 28.074"
        screenshot(page, "bus-desktop")

    await in_browser(scenario, running)
    await telnet.stream.aclose()
