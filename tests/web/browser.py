"""Driving the page in a real headless Chromium (the system `chromium`) with Playwright.

Playwright's sync API runs in a worker thread; the running hamsrv stays in the trio thread. A scenario
reaches back into it with `trio.from_thread` (publish a spot, run a database call). Screenshots go to
build/screens/; `check_accessibility` runs axe-core (bundled by the axe-playwright-python package, a
test extra) in the page and fails on serious or critical violations.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import trio
from playwright.sync_api import Page, sync_playwright

from hamsrv import config as config_mod
from hamsrv.app import Running, run
from hamsrv.identity.sessions import COOKIE, METHOD_TRUST, ensure_user, start_session
from hamsrv.model import Spot
from tests.testdata import REPO

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu"]
SCREENS = REPO / "build" / "screens"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
T = TypeVar("T")


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is not installed (scripts/install-test-deps installs it)"
    return found


def spot(dx: str, khz: float) -> Spot:
    return Spot(spotter="G4XYZ", freq=khz, dx=dx, comment="cq", time=datetime.now(UTC).replace(second=0))


def published(running: Any, *spots: Spot) -> None:
    """Spots on the running app's firehose (and in its history) before the page opens."""
    for s in spots:
        running.hub.publish(s)
    running.hub.flush_tick()


@asynccontextmanager
async def app_running(config: config_mod.Config, nursery: trio.Nursery) -> AsyncIterator[Running]:
    """The whole app as the `running` fixture starts it, with other settings, until the block ends."""
    handle: Running = await nursery.start(lambda task_status: run(config, handle_signals=False,
                                                                  task_status=task_status))
    try:
        yield handle
    finally:
        handle.shutdown.set()


class Server:
    """The running app as the browser thread sees it: publish spots, run async calls, sign users in."""

    def __init__(self, running: Any, url: str | None = None):
        self.running = running
        self.url = url or f"http://127.0.0.1:{running.http_port}/"

    def publish(self, s: Spot) -> None:
        def now() -> None:
            self.running.hub.publish(s)
            self.running.hub.flush_tick()
        trio.from_thread.run_sync(now)

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        return trio.from_thread.run(fn)

    def sign_in(self, page: Page, callsign: str = "W1AW", method: str = "email") -> int:
        """A session for `callsign` as if signed in by `method`, as the browser's cookie; the user's id."""
        async def session() -> tuple[int, str]:
            user = await ensure_user(self.running.db, callsign, METHOD_TRUST[method])
            return user["id"], await start_session(self.running.db, user["id"], method, "127.0.0.1",
                                                   timedelta(hours=1))
        user_id, token = self.call(session)
        page.context.add_cookies([{"name": COOKIE, "value": token, "url": self.url}])
        return user_id


async def in_browser(scenario: Callable[[Page, Server], None], running: Any,
                     viewport: dict[str, int] | None = None, url: str | None = None,
                     **context_options: Any) -> None:
    """Run `scenario(page, server)` in Chromium against the running app (at `url`, default its HTTP port)."""
    server = Server(running, url)

    def run() -> None:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
            try:
                context = browser.new_context(viewport=viewport or DESKTOP, **context_options)
                page = context.new_page()
                page.set_default_timeout(15_000)
                scenario(page, server)
            finally:
                browser.close()

    await trio.to_thread.run_sync(run)


def rows(page: Page, table: str = "#spots") -> list[list[str]]:
    result: list[list[str]] = page.eval_on_selector_all(
        f"{table} tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")
    return result


def screenshot(page: Page, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=True)


def fits_the_width(page: Page) -> None:
    """No horizontal scrolling of the page (a wide table may scroll inside its own box)."""
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.viewport_size
    assert viewport is not None
    wide = page.evaluate(f"""[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right + window.scrollX
        > {viewport["width"]} && !e.parentElement.closest(".table-wrap")).slice(0, 3).map(e => e.outerHTML.slice(0, 80))""")
    assert width <= viewport["width"], f"the page is {width} px wide at {viewport['width']} px: {wide} {page.url}"


def axe_script() -> Path:
    import axe_playwright_python

    return Path(axe_playwright_python.__file__).parent / "axe.min.js"


def check_accessibility(page: Page, view: str) -> None:
    """axe-core over the shown view; serious and critical violations fail with their rule and nodes."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(path=str(axe_script()))
    found = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
                          ".filter(v => ['serious', 'critical'].includes(v.impact))"
                          ".map(v => `${v.id} (${v.impact}): ${v.help}: ` + v.nodes.map(n => n.target.join(' ')).join(', '))")
    assert not found, f"accessibility of the {view} view:\n" + "\n".join(found)
