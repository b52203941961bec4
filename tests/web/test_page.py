"""The spots view in a real headless Chromium: history then live spots, filters that keep their history,
pause, lean spots (absent keys), phone width, a network drop and a server restart that lose no spot."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import trio
from playwright.sync_api import Page, expect

from hamsrv import config as config_mod
from hamsrv.app import Running, run
from tests.test_e2e_cluster import telnet_user
from tests.test_serve import free_port
from tests.web.browser import PHONE, Server, fits_the_width, in_browser, published, rows, spot


async def test_history_then_live_spots_and_a_band_filter_keeps_its_history(running: Any) -> None:
    published(running, spot("JA1XYZ", 14025.0), spot("DL1ABC", 7003.0))

    def scenario(page: Page, server: Server) -> None:
        page.goto(server.url)
        expect(page.locator("#status")).to_have_text("live")
        expect(page.locator("#spots tbody tr")).to_have_count(2)
        server.publish(spot("VK2ABC", 7010.0))
        expect(page.locator("#spots tbody tr")).to_have_count(3)
        first = rows(page)[0]
        assert first[2] == "VK2ABC" and first[4] == "40m" and first[3] == "Australia"
        page.select_option("#band", "20m")  # the 20 m history comes back, not an empty table
        expect(page.locator("#spots tbody tr")).to_have_count(1)
        assert rows(page)[0][2] == "JA1XYZ"
        server.publish(spot("ZS6DEF", 7012.0))  # 40 m: filtered out by the server
        server.publish(spot("PY2ABC", 14030.0))
        expect(page.locator("#spots tbody tr")).to_have_count(2)
        assert [r[2] for r in rows(page)] == ["PY2ABC", "JA1XYZ"]
        page.select_option("#band", "")
        page.select_option("#cont", "OC")  # continent: Australia's spots only, history included
        expect(page.locator("#spots tbody tr")).to_have_count(1)
        assert rows(page)[0][2] == "VK2ABC"

    await in_browser(scenario, running)


async def test_pause_holds_new_spots(running: Any) -> None:
    def scenario(page: Page, server: Server) -> None:
        page.goto(server.url)
        expect(page.locator("#status")).to_have_text("live")
        page.click("#pause")
        expect(page.locator("#pause")).to_have_attribute("aria-pressed", "true")
        server.publish(spot("JA1XYZ", 14025.0))
        page.wait_for_timeout(500)
        expect(page.locator("#spots tbody tr")).to_have_count(0)
        page.click("#pause")
        expect(page.locator("#spots tbody tr")).to_have_count(1)

    await in_browser(scenario, running)


async def test_absent_keys_show_as_empty(running: Any) -> None:
    """Lean spots leave out unknown values (no country, mode, comment, spotter): empty cells, never
    "undefined" or "null"."""
    lean = '{"spots":[{"id":7,"dx":"XX9XX","freq":3999.0,"time":"2026-12-04T08:00:00Z"},{"id":8,"dx":"K1ABC"}],' \
           '"last_id":8,"scanned_to":8}'

    def scenario(page: Page, server: Server) -> None:
        page.route("**/api/spots?*", lambda route: route.fulfill(body=lean, content_type="application/json"))
        page.goto(server.url)
        expect(page.locator("#spots tbody tr")).to_have_count(2)
        assert rows(page)[1] == ["08:00", "3999.0", "XX9XX", "", "", "", "", ""]
        assert rows(page)[0][2] == "K1ABC"
        text = page.inner_text("#spots")
        assert "undefined" not in text and "null" not in text and "NaN" not in text

    await in_browser(scenario, running)


async def test_the_relay_pairing_token_survives_a_reload(running: Any) -> None:
    """Typed (or pasted) and then reloaded without leaving the field: the token is still there."""
    def scenario(page: Page, server: Server) -> None:
        page.goto(server.url + "#settings")
        page.focus("#relay-token")
        page.keyboard.insert_text("pairing-token-123")
        page.reload()
        expect(page.locator("#relay-token")).to_have_value("pairing-token-123")
        page.goto(server.url + "#spots")
        expect(page.locator("#status")).to_have_text("live")

    await in_browser(scenario, running)


async def test_tuning_without_a_relay_says_so(running: Any) -> None:
    published(running, spot("JA1XYZ", 14025.0))

    def scenario(page: Page, server: Server) -> None:
        page.goto(server.url + "#settings")
        page.fill("#relay-url", f"http://127.0.0.1:{free_port()}")  # nothing listens there
        page.fill("#relay-token", "t0ken")
        page.goto(server.url + "#spots")
        page.click("#spots tbody button.freq")
        expect(page.locator("#note")).to_have_text("the radio relay is not running on this computer")

    await in_browser(scenario, running)


async def test_chromium_receives_spots_through_shared_permessage_deflate(running: Any) -> None:
    """Chromium offers permessage-deflate by default: it is accepted without context takeover, and the
    group's once-compressed frames inflate in the browser to the same spots."""
    def compressions(page: Page, url: str) -> float:
        metrics = page.request.get(url + "metrics").text()
        return float(next(line.split()[1] for line in metrics.splitlines()
                          if line.startswith("hamsrv_firehose_compressions_total")))

    def scenario(page: Page, server: Server) -> None:
        page.goto(server.url)
        before = compressions(page, server.url)
        page.evaluate("""() => new Promise(resolve => {
            window.probe = new WebSocket(location.origin.replace('http', 'ws') + '/ws/firehose?band=17m');
            window.probeMessages = [];
            window.probe.onmessage = m => window.probeMessages.push(JSON.parse(m.data));
            window.probe.onopen = () => resolve();
        })""")
        assert "permessage-deflate" in page.evaluate("() => window.probe.extensions")
        server.publish(spot("ZS6ABC", 18080.0))
        page.wait_for_function("() => window.probeMessages.length > 0")
        [frame] = page.evaluate("() => window.probeMessages")
        assert [(s["dx"], s["freq"], s["band"]) for s in frame] == [("ZS6ABC", 18080.0, "17m")]
        assert compressions(page, server.url) > before  # the browser's frames were compressed ones

    await in_browser(scenario, running)


class Restartable:
    """The whole app on a fixed port, stopped and started again from the browser thread."""

    def __init__(self, config: config_mod.Config, nursery: trio.Nursery):
        self.config, self.nursery = config, nursery
        self.handle: Running | None = None
        self.stopped = trio.Event()

    async def start(self) -> Running:
        self.stopped = trio.Event()
        self.handle = await self.nursery.start(self._life)
        return self.handle

    async def _life(self, task_status: trio.TaskStatus[Running]) -> None:
        try:
            await run(self.config, handle_signals=False, task_status=task_status)
        finally:
            self.stopped.set()

    async def restart(self) -> None:
        assert self.handle is not None
        self.handle.shutdown.set()
        await self.stopped.wait()
        await self.start()


async def test_a_network_drop_and_a_server_restart_lose_no_spot(app_config: config_mod.Config,
                                                              nursery: trio.Nursery) -> None:
    app = Restartable(replace(app_config, http=config_mod.Bind("127.0.0.1", free_port())), nursery)
    await app.start()

    def scenario(page: Page, server: Server) -> None:
        page.goto(server.url)
        expect(page.locator("#status")).to_have_text("live")
        server.publish(spot("JA1XYZ", 14025.0))
        expect(page.locator("#spots tbody tr")).to_have_count(1)
        page.context.set_offline(True)  # a network drop: spots go on meanwhile
        page.evaluate("() => window.dispatchEvent(new Event('offline'))")
        server.publish(spot("VK2ABC", 7010.0))
        server.publish(spot("ZS6DEF", 21010.0))
        page.wait_for_timeout(300)
        page.context.set_offline(False)
        expect(page.locator("#spots tbody tr")).to_have_count(3)
        server.call(app.restart)  # the server goes away: the page reconnects with `since`
        server.running = app.handle
        server.publish(spot("PY2ABC", 14030.0))  # published before the page is back
        server.publish(spot("K1ABC", 7030.0))
        expect(page.locator("#status")).to_have_text("live", timeout=30_000)
        expect(page.locator("#spots tbody tr")).to_have_count(5)
        assert [r[2] for r in rows(page)] == ["K1ABC", "PY2ABC", "ZS6DEF", "VK2ABC", "JA1XYZ"]

    assert app.handle is not None
    await in_browser(scenario, app.handle)
    assert app.handle is not None
    app.handle.shutdown.set()


async def test_propagation_to_a_clicked_spot_at_phone_width(running: Any) -> None:
    published(running, spot("JA1XYZ", 14025.0))

    def scenario(page: Page, server: Server) -> None:
        page.route("**/api/propagation?*", lambda route: route.continue_(url=route.request.url + "&flux=140"))
        page.goto(server.url + "#settings")
        page.fill("#home-grid", "FN31")
        page.goto(server.url + "#spots")
        page.click("#spots tbody tr td button[title^=propagation]")  # the path to the spot's DX (its country)
        expect(page.locator("#view-solar")).to_be_visible()
        expect(page.locator("#prop-info")).to_contain_text("FN31 to JA1XYZ (Japan)")
        expect(page.locator("#prop-chart rect")).to_have_count(24)
        fits_the_width(page)
        page.reload()  # the home grid is kept across reloads
        expect(page.locator("#prop-from")).to_have_value("FN31")

    await in_browser(scenario, running, viewport=PHONE)


async def test_solar_and_propagation_without_solar_data_say_so(running: Any) -> None:
    def scenario(page: Page, server: Server) -> None:
        page.goto(server.url + "#solar")
        expect(page.locator("#solar-now")).to_contain_text("no solar data yet")
        page.fill("#prop-from", "FN31")
        page.fill("#prop-to", "JO62")
        page.click("#prop-form button")
        expect(page.locator("#prop-info")).to_contain_text("no solar data yet")
        page.fill("#prop-to", "nowhere")
        page.click("#prop-form button")
        expect(page.locator("#prop-info")).to_contain_text("not a Maidenhead locator")

    await in_browser(scenario, running)


async def test_keyboard_alone_reaches_a_view_and_tunes(running: Any) -> None:
    published(running, spot("JA1XYZ", 14025.0))

    def scenario(page: Page, server: Server) -> None:
        page.goto(server.url)
        expect(page.locator("#spots tbody tr")).to_have_count(1)
        page.keyboard.press("Tab")  # the skip link first
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        for _ in range(20):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent") == "Logbook":
                break
        page.keyboard.press("Enter")
        expect(page.locator("#view-logbook")).to_be_visible()
        expect(page.locator("#view-spots")).to_be_hidden()
        page.go_back()  # views are URLs: back works
        expect(page.locator("#view-spots")).to_be_visible()
        page.focus("#spots tbody button.freq")
        page.keyboard.press("Enter")  # no pairing token yet: says where to set it
        expect(page.locator("#note")).to_contain_text("pairing token in Settings")

    await in_browser(scenario, running)


async def test_a_cluster_announcement_shows_above_the_spots(running: Any) -> None:
    def scenario(page: Page, server: Server) -> None:
        page.goto(server.url)
        expect(page.locator("#status")).to_have_text("live")

        async def announce() -> None:
            stream, _ = await telnet_user(running.cluster_port, "G4ABC")
            await stream.send_all(b"announce full 20m is open to JA\r\n")
            await stream.aclose()
        server.call(announce)
        expect(page.locator("#note")).to_have_text("To ALL de G4ABC: 20m is open to JA")

    await in_browser(scenario, running)


async def test_a_late_history_of_an_older_filter_is_dropped(running: Any) -> None:
    """Filters changed faster than the history comes: only the current filter's history shows."""
    published(running, spot("JA1XYZ", 14025.0), spot("VK2ABC", 7010.0))

    def scenario(page: Page, server: Server) -> None:
        page.add_init_script("""{ const plain = window.fetch;  // the 20 m history answers late
            window.fetch = async (...args) => { const r = await plain(...args);
                if (String(args[0]).includes('band=20m')) await new Promise(ok => setTimeout(ok, 800));
                return r; }; }""")
        page.goto(server.url)
        expect(page.locator("#spots tbody tr")).to_have_count(2)
        page.select_option("#band", "20m")
        page.select_option("#band", "")
        page.select_option("#cont", "OC")
        expect(page.locator("#spots tbody tr")).to_have_count(1)
        page.wait_for_timeout(1200)  # the 20 m history has come meanwhile
        assert [r[2] for r in rows(page)] == ["VK2ABC"]

    await in_browser(scenario, running)
