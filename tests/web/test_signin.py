"""Each sign-in way, in Chromium, against the real local servers the identity tests use: an FCC e-mail
code through aiosmtpd, a code in a "QRZ" biography page, and a LoTW certificate on the mTLS listener;
then who is signed in, and logging out."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import Page, expect

from hamsrv import config as config_mod
from tests.identity.conftest import MailServer, Served
from tests.identity.test_qrz import QrzPages
from tests.web.browser import Server, app_running, in_browser


@pytest.fixture
async def with_mail_and_qrz(app_config: config_mod.Config, smtp: MailServer,
                            qrz: tuple[str, QrzPages], nursery: trio.Nursery) -> AsyncIterator[Any]:
    config = replace(app_config, smtp_url=smtp.url, qrz_url=qrz[0])
    async with app_running(config, nursery) as handle:
        await handle.db.execute("INSERT INTO callbook (callsign, name, email, license_status)"
                                " VALUES ('W1XYZ', 'JOHN Q OPERATOR', 'w1xyz@example.org', 'A')")
        yield handle


def who(page: Page) -> str:
    return page.inner_text("#who")


async def test_email_code_then_logout(with_mail_and_qrz: Any, smtp: MailServer) -> None:
    def scenario(page: Page, server: Server) -> None:
        page.goto(server.url + "#signin")
        expect(page.locator("#signed-in")).to_have_text("Nobody is signed in.")
        page.fill("#email-form [name=callsign]", "K9NOPE")
        page.click("#email-form button")
        expect(page.locator("#email-form .field-error")).to_contain_text("no e-mail address for K9NOPE")
        page.fill("#email-form [name=callsign]", "w1xyz")
        page.click("#email-form button")
        expect(page.locator("#email-form .form-error")).to_contain_text("A code went to w***@example.org")
        (mail,) = server.call(lambda: smtp.wait_for(1))
        code = re.search(r"\b(\d{6})\b", mail.get_payload()).group(1)  # type: ignore[union-attr]
        page.fill("#email-code [name=code]", f"{(int(code) + 1) % 10**6:06d}")
        page.click("#email-code button")
        expect(page.locator("#email-code .field-error")).to_be_visible()  # a wrong code, said at the field
        page.fill("#email-code [name=code]", code)
        page.click("#email-code button")
        expect(page.locator("#who")).to_contain_text("W1XYZ (trust medium)")
        expect(page.locator("#signed-in")).to_contain_text("by email")
        page.reload()  # the session cookie keeps it
        expect(page.locator("#who")).to_contain_text("W1XYZ")
        page.click("#who button:text('Log out')")
        expect(page.locator("#who")).to_have_text("Sign in")

    await in_browser(scenario, with_mail_and_qrz)


async def test_qrz_biography_code(with_mail_and_qrz: Any, qrz: tuple[str, QrzPages]) -> None:
    qrz[1].bios["k1abc"] = "<p>QRV on 40 m CW.</p>"

    def scenario(page: Page, server: Server) -> None:
        page.goto(server.url + "#signin")
        page.fill("#qrz-form [name=callsign]", "K1ABC")
        page.click("#qrz-form button")
        code = page.locator("#qrz-code")
        expect(code).to_have_text(re.compile("^HAMS-"))
        assert page.get_attribute("#qrz-page", "href") == qrz[0] + "k1abc"
        page.click("#qrz-verify button")  # not on the page yet: the server says so
        expect(page.locator("#qrz-verify .form-error")).to_contain_text("is not on K1ABC's QRZ page")
        qrz[1].bios["k1abc"] = f"<p>73! {code.inner_text()}</p>"
        page.click("#qrz-verify button")
        expect(page.locator("#who")).to_contain_text("K1ABC (trust low)")

    await in_browser(scenario, with_mail_and_qrz)


async def test_lotw_certificate_on_the_mtls_listener(served: Served, tmp_path: Path) -> None:
    cert, key = served.ca.user("W1AW")
    cert_file, key_file = tmp_path / "w1aw.pem", tmp_path / "w1aw.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    auth = f"https://127.0.0.1:{served.auth_port}"

    def scenario(page: Page, server: Server) -> None:
        page.goto(server.url + "#signin")
        link = page.locator("#cert-link")
        expect(link).to_have_attribute("href", auth + "/")
        with page.expect_popup() as opened:
            link.click()
        popup = opened.value
        expect(popup.locator("body")).to_contain_text('"callsign":"W1AW"')
        popup.close()
        expect(page.locator("#who")).to_contain_text("W1AW (trust high)")  # the page noticed the cookie

    await in_browser(scenario, served.running, url=served.main + "/", ignore_https_errors=True,
                     client_certificates=[{"origin": auth, "certPath": str(cert_file), "keyPath": str(key_file)}])
