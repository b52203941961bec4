"""The logbook and import views in Chromium: keyset pages, a search, an edit refused inline and then
saved, a new QSO; an ADIF upload whose bar follows /ws/imports, then its summary with rejected records."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import trio
from playwright.sync_api import Page, expect

from hamsrv import config as config_mod
from hamsrv.db import qsos
from hamsrv.http.qso_input import row_from_json
from tests.testdata import TESTDATA
from tests.web.browser import Server, app_running, in_browser, rows


def log_qsos(server: Server, user_id: int, count: int) -> None:
    async def insert() -> None:
        for n in range(count):
            await qsos.insert(server.running.db, user_id, row_from_json(
                {"call": f"DL{n}ABC", "qso_date": "20260301", "time_on": f"{n // 60:02d}{n % 60:02d}",
                 "band": "20m", "mode": "CW", "freq": 14.025, "rst_sent": "599", "lotw_qsl_rcvd": "Y" if n == 0 else "N"}))
    server.call(insert)


async def test_pages_search_and_an_edit_with_an_inline_error(running: Any) -> None:
    def scenario(page: Page, server: Server) -> None:
        user_id = server.sign_in(page, "W1AW")
        log_qsos(server, user_id, 60)
        page.goto(server.url + "#logbook")
        expect(page.locator("#qsos tbody tr")).to_have_count(50)  # a page
        assert rows(page, "#qsos")[0][:4] == ["2026-03-01 0059", "DL59ABC", "20m", "CW"]
        page.click("#qso-older")  # the next page, by the server's cursor
        expect(page.locator("#qsos tbody tr")).to_have_count(10)
        assert rows(page, "#qsos")[-1][1] == "DL0ABC" and rows(page, "#qsos")[-1][8] == "-/Y"  # LoTW received
        expect(page.locator("#qso-older")).to_be_disabled()
        page.fill("#qso-search [name=call]", "DL1*")
        page.click("#qso-search button[type=submit]")
        expect(page.locator("#qsos tbody tr")).to_have_count(11)  # DL1ABC and DL10-19ABC
        page.fill("#qso-search [name=call]", "not a call!")
        page.click("#qso-search button[type=submit]")
        expect(page.locator("#qso-search .field-error")).to_contain_text("call must be a callsign")

        page.fill("#qso-search [name=call]", "DL1ABC")
        page.click("#qso-search button[type=submit]")
        expect(page.locator("#qsos tbody tr")).to_have_count(1)
        page.click("#qsos tbody tr button:text('Edit')")
        expect(page.locator("#qso-form [name=call]")).to_have_value("DL1ABC")
        page.fill("#qso-form [name=band]", "21m")
        page.click("#qso-form button[type=submit]")
        error = page.locator("#qso-form .field-error")
        expect(error).to_have_text("'21m' is not an ADIF band")  # the server's words, beside the field
        expect(page.locator("#qso-form [name=band]")).to_have_attribute("aria-invalid", "true")
        page.fill("#qso-form [name=band]", "40m")
        page.fill("#qso-form [name=freq]", "7.025")
        page.fill("#qso-form [name=qsl_rcvd]", "Y")
        page.click("#qso-form button[type=submit]")
        expect(page.locator("#qso-form")).to_be_hidden()
        first = page.locator("#qsos tbody tr").first.locator("td")
        expect(first.nth(2)).to_have_text("40m")
        expect(first.nth(7)).to_have_text("-/Y")
        stored = server.call(lambda: qsos.search(server.running.db, user_id, qsos.Search(call="DL1ABC"), limit=5))
        assert [(q["band"], q["freq"], q["qsl_rcvd"]) for q in stored] == [("40m", 7.025, "Y")]

        page.click("#qso-add")
        for name, value in (("call", "JA1XYZ"), ("qso_date", "20260302"), ("time_on", "1200"), ("band", "15m"),
                            ("mode", "SSB")):
            page.fill(f"#qso-form [name={name}]", value)
        page.click("#qso-form button[type=submit]")
        expect(page.locator("#qso-form")).to_be_hidden()
        page.fill("#qso-search [name=call]", "")
        page.click("#qso-search button[type=submit]")
        expect(page.locator("#qsos tbody tr").first.locator("td").nth(1)).to_have_text("JA1XYZ")
        assert page.get_attribute("a[href='/api/export.adx']", "download") is not None

    await in_browser(scenario, running)


@pytest.fixture
async def small_batches(app_config: config_mod.Config, nursery: trio.Nursery) -> AsyncIterator[Any]:
    """The app committing imports 200 QSOs at a time: a progress event each."""
    async with app_running(replace(app_config, import_batch=200), nursery) as handle:
        yield handle


async def test_an_upload_shows_progress_then_its_summary(small_batches: Any) -> None:
    log = TESTDATA / "adif" / "wsjtx_300rc1_m7pxz.adi"  # 1,700 records, 8 rejected

    def scenario(page: Page, server: Server) -> None:
        server.sign_in(page, "W1AW")
        page.goto(server.url + "#import")
        expect(page.locator("#drop")).to_be_visible()
        page.evaluate("""() => {  // every value the bar takes, as the page sets it
            window.seen = [];
            const bar = document.getElementById('import-progress');
            new MutationObserver(() => window.seen.push([bar.value, bar.max]))
                .observe(bar, {attributes: true});
            const set = Object.getOwnPropertyDescriptor(HTMLProgressElement.prototype, 'value').set;
            Object.defineProperty(bar, 'value', {set(v) { set.call(this, v); window.seen.push([this.value, this.max]); },
                                                 get() { return this.getAttribute('value') === null ? 0 : Number(this.getAttribute('value')); }});
        }""")
        page.set_input_files("#import-file", str(log))
        expect(page.locator("#import-status")).to_contain_text("done", timeout=60_000)
        seen = page.evaluate("window.seen")
        partial = [v for v, m in seen if 0 < v < m]
        assert len(partial) >= 3, f"the bar moved through {seen}"
        assert seen[-1][0] == seen[-1][1] == log.stat().st_size
        status = page.inner_text("#import-status")
        assert "records read 1700" in status and "rejected 8" in status, status
        expect(page.locator("#import-rejects tbody tr")).to_have_count(8)
        first = rows(page, "#import-rejects")[0]
        assert first[0].isdigit() and first[1].isdigit() and first[3], first  # record, byte offset, reason

    await in_browser(scenario, small_batches)
