"""Every view of the page for a signed-in user, at desktop and phone width: a screenshot of each into
build/screens/, no horizontal overflow at 390 px, and axe-core finding no serious or critical violation.
The DNS view adds a record to a real PowerDNS (and shows a refused one's error beside its field)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import trio
from playwright.sync_api import Page, expect

from hamsrv import config as config_mod
from tests.sync.conftest import ZONE
from tests.sync.powerdns import API_KEY, PowerDns
from tests.web.browser import (
    DESKTOP,
    PHONE,
    Server,
    app_running,
    check_accessibility,
    fits_the_width,
    in_browser,
    published,
    screenshot,
    spot,
)
from tests.web.test_logbook import log_qsos


@pytest.fixture
async def full(app_config: config_mod.Config, powerdns: PowerDns, nursery: trio.Nursery) -> AsyncIterator[Any]:
    """The app with member DNS on a real PowerDNS and an hour-old NOAA reading."""
    config = replace(app_config, dns_zone=ZONE, pdns_url=powerdns.api_url, pdns_key=API_KEY)
    async with app_running(config, nursery) as handle:
        await handle.db.execute(
            "INSERT INTO solar_latest (id, flux, flux_time, kp, kp_time, ssn, ssn_month, fetched_at) VALUES"
            " (1, 142.0, now() - interval '1 hour', 3.33, now() - interval '1 hour', 118.2, date_trunc('month', now()),"
            " now() - interval '1 hour')")
        published(handle, *(spot(dx, khz) for dx, khz in (("JA1XYZ", 14025.0), ("VK2ABC", 7010.0),
                                                           ("PY2ABC", 21074.0), ("K1ABC", 3573.0))))
        yield handle


VIEWS = {  # view: what shows once it has loaded
    "spots": "#spots tbody tr",
    "logbook": "#qsos tbody tr",
    "import": "#drop",
    "signin": "#signed-in:has-text('Signed in as W1AW')",
    "qsl": "#qsl-health li",
    "solar": "#prop-chart rect",
    "dns": "#dns-records tbody tr",
    "settings": "#share-qsos:enabled",
}


def dns_record_added(page: Page, powerdns: PowerDns) -> None:
    page.fill("#dns-form [name=name]", "www")
    page.select_option("#dns-form [name=type]", "A")
    page.fill("#dns-form [name=content]", "192.0.2.300")
    page.click("#dns-form button[type=submit]")
    expect(page.locator("#dns-form .field-error")).to_be_visible()  # refused, beside the content field
    assert page.get_attribute("#dns-form [name=content]", "aria-invalid") == "true"
    page.fill("#dns-form [name=content]", "192.0.2.10")
    page.click("#dns-form button[type=submit]")
    expect(page.locator("#dns-records tbody tr")).to_have_count(1)
    assert "192.0.2.10" in page.inner_text("#dns-records")
    assert trio.from_thread.run(powerdns.dig, f"www.w1aw.{ZONE}", "A") == ["192.0.2.10"]  # in real DNS


@pytest.mark.parametrize("width", ["desktop", "phone"])
async def test_each_view_screenshot_width_and_accessibility(full: Any, powerdns: PowerDns, width: str) -> None:
    def scenario(page: Page, server: Server) -> None:
        user_id = server.sign_in(page, "W1AW")
        log_qsos(server, user_id, 12)
        for view, loaded in VIEWS.items():
            page.goto(server.url + f"#{view}")
            if view == "solar":
                page.fill("#prop-from", "FN31")
                page.fill("#prop-to", "JA1XYZ")
                page.click("#prop-form button")
                expect(page.locator("#solar-now")).to_contain_text("SFI 142")
            if view == "dns" and width == "desktop":
                dns_record_added(page, powerdns)
            if view == "dns" and width == "phone":
                expect(page.locator("#dns-zone")).to_contain_text("w1aw")
                continue_loaded = "#dns-zone"
            else:
                continue_loaded = loaded
            expect(page.locator(continue_loaded).first).to_be_visible()
            screenshot(page, f"{view}-{width}")
            if width == "phone":
                fits_the_width(page)
            check_accessibility(page, view)
        page.click("#theme")  # dark, whatever the system says
        assert page.evaluate("document.documentElement.dataset.theme") == "dark"
        page.goto(server.url + "#spots")
        screenshot(page, f"spots-{width}-dark")
        check_accessibility(page, "spots (dark)")

    await in_browser(scenario, full, viewport=DESKTOP if width == "desktop" else PHONE)
