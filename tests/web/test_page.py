"""The web page in a real headless Chromium (the system `chromium`), driven by Playwright.

Playwright's sync API runs in a worker thread; the running hamsrv stays in the trio thread, and the
scenario publishes spots into it through `trio.from_thread`. Screenshots of each view, at desktop and
phone width, go to build/screens/ (attached to the issue's closing note).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import trio
from playwright.sync_api import Page, expect, sync_playwright

from hamsrv.model import Spot
from tests.testdata import REPO

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu"]
SCREENS = REPO / "build" / "screens"
PHONE = {"width": 390, "height": 844}


def spot(dx: str, khz: float) -> Spot:
    return Spot(spotter="G4XYZ", freq=khz, dx=dx, comment="cq", time=datetime.now(UTC).replace(second=0))


async def in_browser(scenario: Callable[[Page, Callable[[Spot], None]], None], running: Any,
                     viewport: dict[str, int] | None = None) -> None:
    """Run `scenario(page, publish)` in Chromium; publish(spot) puts a spot on the running firehose."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is not installed (scripts/install-test-deps installs it)"

    def publish(s: Spot) -> None:
        def now() -> None:
            running.hub.publish(s)
            running.hub.flush_tick()
        trio.from_thread.run_sync(now)

    def run() -> None:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page(viewport=viewport or {"width": 1280, "height": 800})
                page.set_default_timeout(15_000)
                scenario(page, publish)
            finally:
                browser.close()

    await trio.to_thread.run_sync(run)


def rows(page: Page) -> list[list[str]]:
    result: list[list[str]] = page.eval_on_selector_all(
        "#spots tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")
    return result


def screenshot(page: Page, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=True)


async def test_history_then_live_spots_and_a_band_filter_keeps_its_history(running: Any) -> None:
    running.hub.publish(spot("JA1XYZ", 14025.0))
    running.hub.publish(spot("DL1ABC", 7003.0))
    running.hub.flush_tick()
    url = f"http://127.0.0.1:{running.http_port}/"

    def scenario(page: Page, publish: Callable[[Spot], None]) -> None:
        page.goto(url)
        expect(page.locator("#status")).to_have_text("live")
        expect(page.locator("#spots tbody tr")).to_have_count(2)
        publish(spot("VK2ABC", 7010.0))
        expect(page.locator("#spots tbody tr")).to_have_count(3)
        first = rows(page)[0]
        assert first[2] == "VK2ABC" and first[4] == "40m" and first[3] == "Australia"
        screenshot(page, "spots-desktop")
        page.select_option("#band", "20m")  # the 20 m history comes back, not an empty table
        expect(page.locator("#spots tbody tr")).to_have_count(1)
        assert rows(page)[0][2] == "JA1XYZ"
        publish(spot("ZS6DEF", 7012.0))  # 40 m: filtered out by the server
        publish(spot("PY2ABC", 14030.0))
        expect(page.locator("#spots tbody tr")).to_have_count(2)
        assert [r[2] for r in rows(page)] == ["PY2ABC", "JA1XYZ"]

    await in_browser(scenario, running)


async def test_phone_width_fits_and_propagation_to_a_clicked_spot(running: Any) -> None:
    running.hub.publish(spot("JA1XYZ", 14025.0))
    running.hub.flush_tick()
    url = f"http://127.0.0.1:{running.http_port}/"

    def scenario(page: Page, publish: Callable[[Spot], None]) -> None:
        page.goto(url)
        expect(page.locator("#spots tbody tr")).to_have_count(1)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the page is {width} px wide at a {PHONE['width']} px screen"
        screenshot(page, "spots-phone")
        page.click("#prop summary")
        page.fill("#home-grid", "FN31")
        page.click("#spots tbody tr td.dx")  # the path to the spot's DX (its country, from cty.dat)
        expect(page.locator("#prop-info")).to_contain_text("JA1XYZ (Japan)")
        expect(page.locator("#prop-chart rect")).to_have_count(24)
        screenshot(page, "propagation-phone")
        page.reload()  # the home grid is kept across reloads
        expect(page.locator("#home-grid")).to_have_value("FN31")

    await in_browser(scenario_with_flux(scenario), running, viewport=PHONE)


def scenario_with_flux(scenario: Callable[[Page, Callable[[Spot], None]], None]
                       ) -> Callable[[Page, Callable[[Spot], None]], None]:
    """Give the page solar data as the NOAA sync would (a fixed flux), through a routed API answer."""
    def wrapped(page: Page, publish: Callable[[Spot], None]) -> None:
        page.route("**/api/propagation?*", lambda route: route.continue_(url=route.request.url + "&flux=140"))
        scenario(page, publish)
    return wrapped


async def test_propagation_without_solar_data_says_so(running: Any) -> None:
    url = f"http://127.0.0.1:{running.http_port}/"

    def scenario(page: Page, publish: Callable[[Spot], None]) -> None:
        page.goto(url)
        page.click("#prop summary")
        page.fill("#home-grid", "FN31")
        page.fill("#prop-to", "JO62")
        page.click("#prop-form button")
        expect(page.locator("#prop-info")).to_contain_text("no solar data yet")
        page.fill("#prop-to", "nowhere")
        page.click("#prop-form button")
        expect(page.locator("#prop-info")).to_contain_text("not a Maidenhead locator")

    await in_browser(scenario, running)



async def test_the_relay_pairing_token_survives_a_reload(running: Any) -> None:
    """Typed (or pasted) and then reloaded without leaving the field: the token is still there."""
    url = f"http://127.0.0.1:{running.http_port}/"

    def scenario(page: Page, publish: Callable[[Spot], None]) -> None:
        page.goto(url)
        page.click("#relay-settings summary")
        page.focus("#relay-token")
        page.keyboard.insert_text("pairing-token-123")
        page.reload()
        expect(page.locator("#relay-token")).to_have_value("pairing-token-123")

    await in_browser(scenario, running)


async def test_chromium_receives_spots_through_shared_permessage_deflate(running: Any) -> None:
    """Chromium offers permessage-deflate by default: it is accepted without context takeover, and the
    group's once-compressed frames inflate in the browser to the same spots."""
    url = f"http://127.0.0.1:{running.http_port}/"

    def compressions(page: Page) -> float:
        metrics = page.request.get(url + "metrics").text()
        return float(next(line.split()[1] for line in metrics.splitlines()
                          if line.startswith("hamsrv_firehose_compressions_total")))

    def scenario(page: Page, publish: Callable[[Spot], None]) -> None:
        page.goto(url)
        before = compressions(page)
        page.evaluate("""() => new Promise(resolve => {
            window.probe = new WebSocket(location.origin.replace('http', 'ws') + '/ws/firehose?band=17m');
            window.probeMessages = [];
            window.probe.onmessage = m => window.probeMessages.push(JSON.parse(m.data));
            window.probe.onopen = () => resolve();
        })""")
        assert "permessage-deflate" in page.evaluate("() => window.probe.extensions")
        publish(spot("ZS6ABC", 18080.0))
        page.wait_for_function("() => window.probeMessages.length > 0")
        [frame] = page.evaluate("() => window.probeMessages")
        assert [(s["dx"], s["freq"], s["band"]) for s in frame] == [("ZS6ABC", 18080.0, "17m")]
        assert compressions(page) > before  # the browser's frames were compressed ones

    await in_browser(scenario, running)
