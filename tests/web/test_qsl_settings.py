"""The QSL and settings views in Chromium: a LoTW login saved through the form syncs from the local
"LoTW" (the real k9cts report), its health and new confirmations are said in words, a refused password
shows as a failure; share_qsos is the account's and survives a reload."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import trio
from playwright.sync_api import Page, expect

from hamsrv import config as config_mod
from tests.sync.fake_services import Account, FakeServices, start_fake_services
from tests.web.browser import Server, app_running, in_browser

PASSWORD = "s3cret-Pa55"


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeServices:
    return await start_fake_services(nursery, FakeServices(delay=3.0))


@pytest.fixture
async def with_lotw(app_config: config_mod.Config, fake: FakeServices, nursery: trio.Nursery) -> AsyncIterator[Any]:
    config = replace(app_config, lotw_url=fake.url, eqsl_url=fake.url, qsl_timeout=2.0)
    async with app_running(config, nursery) as handle:
        yield handle


def reload_until(page: Page, selector: str, text: str, timeout: float = 20.0) -> None:
    """The sync runs on the server meanwhile: look again until `selector` says `text`."""
    deadline = time.monotonic() + timeout
    while text not in page.inner_text(selector):
        assert time.monotonic() < deadline, f"{selector} never said {text!r}: {page.inner_text(selector)!r}"
        page.wait_for_timeout(300)
        page.reload()
        page.wait_for_selector(f"{selector} li")


async def test_a_lotw_login_syncs_and_its_health_is_told_in_words(with_lotw: Any, fake: FakeServices) -> None:
    fake.lotw["w1aw"] = Account(PASSWORD)

    def scenario(page: Page, server: Server) -> None:
        server.sign_in(page, "W1AW")
        page.goto(server.url + "#qsl")
        expect(page.locator("#qsl-health")).to_contain_text("LoTW: not linked")
        page.fill("#qsl-lotw [name=username]", "w1aw")
        page.click("#qsl-lotw button[type=submit]")  # no password: the browser's own check stops it
        page.fill("#qsl-lotw [name=password]", PASSWORD)
        page.click("#qsl-lotw button[type=submit]")
        expect(page.locator("#qsl-lotw .form-error")).to_contain_text("Saved")
        assert page.input_value("#qsl-lotw [name=password]") == ""  # not kept in the page
        reload_until(page, "#qsl-health", "LoTW: working, last success")
        expect(page.locator("#qsl-health")).to_contain_text("438 confirmations, 438 not matched to a QSO")
        expect(page.locator("#qsl-notices")).to_contain_text("438 new LoTW confirmations")
        page.click("#qsl-seen")
        expect(page.locator("#qsl-notices")).to_have_text("No new confirmations.")
        page.fill("#qsl-lotw [name=username]", "w1aw")
        page.fill("#qsl-lotw [name=password]", "changed")
        page.click("#qsl-lotw button[type=submit]")
        reload_until(page, "#qsl-health", "LoTW refused the password")
        expect(page.locator("#qsl-health li.bad")).to_contain_text("LoTW: failing")

    await in_browser(scenario, with_lotw)


async def test_share_qsos_is_the_accounts_setting(running: Any) -> None:
    def scenario(page: Page, server: Server) -> None:
        user_id = server.sign_in(page, "W1AW")
        page.goto(server.url + "#settings")
        share = page.locator("#share-qsos")
        expect(share).to_be_enabled()
        expect(share).not_to_be_checked()
        share.check()
        expect(page.locator("#settings-form .form-error")).to_contain_text("Your new QSOs go out as spots")
        stored = server.call(lambda: server.running.db.fetchrow("SELECT share_qsos FROM users WHERE id = %s",
                                                                [user_id]))
        assert stored == {"share_qsos": True}
        page.reload()
        expect(page.locator("#share-qsos")).to_be_checked()

    await in_browser(scenario, running)
