"""LoTW certificate sign-in over real TLS handshakes against the running app: every refusal has its own
answer, forgeries never get in, and the main port never believes identity headers."""

from __future__ import annotations

import datetime as dt
import json
import ssl
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.identity.conftest import Served, raw_https_get
from tests.tls import LOTW_CA_NAME, LotwCA, lotw_subject, self_signed

NOW = dt.datetime.now(dt.UTC)


async def users(served: Served) -> list[dict]:
    return await served.running.db.fetch("SELECT callsign, trust_level FROM users ORDER BY callsign")


async def test_valid_certificate_signs_in_with_trust_high_and_sets_the_main_site_cookie(served: Served):
    cert, key = served.ca.user("W1AW", dxcc="291", qso_from="1945-11-01", qso_to="2030-12-31")
    async with served.auth_client(served.ca.client_context(cert, key)) as auth:
        response = await auth.get("/")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["callsign"], body["trust"], body["dxcc"]) == ("W1AW", "high", 291)
    assert (body["qso_not_before"], body["qso_not_after"]) == ("1945-11-01", "2030-12-31")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("hamsrv_session=" + body["token"])
    for attribute in ("HttpOnly", "SameSite=Lax", "Secure", "Path=/"):
        assert attribute in cookie
    assert await users(served) == [{"callsign": "W1AW", "trust_level": 3}]
    async with served.main_client(cookies={"hamsrv_session": body["token"]}) as browser:
        me = await browser.get("/api/me")
    assert me.status_code == 200
    assert (me.json()["callsign"], me.json()["trust"], me.json()["method"]) == ("W1AW", "high", "lotw")
    async with served.main_client(headers={"Authorization": f"Bearer {body['token']}"}) as script:
        assert (await script.get("/api/me")).json()["callsign"] == "W1AW"


async def test_an_existing_account_is_raised_to_high(served: Served):
    await served.running.db.execute("INSERT INTO users (callsign, trust_level) VALUES ('K1ABC', 1)")
    cert, key = served.ca.user("k1abc")
    async with served.auth_client(served.ca.client_context(cert, key)) as auth:
        assert (await auth.get("/")).json()["account_trust"] == "high"
    assert await users(served) == [{"callsign": "K1ABC", "trust_level": 3}]


async def test_no_certificate_is_a_json_401(served: Served):
    async with served.auth_client(served.ca.client_context()) as auth:
        response = await auth.get("/")
    assert response.status_code == 401
    assert response.json()["error"].startswith("no client certificate")
    assert response.json()["field"] == "certificate"


@pytest.mark.parametrize(("when", "expected"), [
    ({"not_before": NOW - dt.timedelta(days=400), "not_after": NOW - dt.timedelta(days=2)}, "expired on"),
    ({"not_before": NOW + dt.timedelta(days=2), "not_after": NOW + dt.timedelta(days=400)}, "not valid yet"),
])
async def test_expired_and_not_yet_valid_certificates_are_refused_with_their_dates(served: Served, when, expected):
    cert, key = served.ca.user("W1AW", **when)
    async with served.auth_client(served.ca.client_context(cert, key)) as auth:
        response = await auth.get("/")
    assert response.status_code == 403
    assert expected in response.json()["error"]
    assert await users(served) == []


async def test_a_certificate_without_a_callsign_is_refused(served: Served):
    cert, key = served.ca.user(None)
    async with served.auth_client(served.ca.client_context(cert, key)) as auth:
        response = await auth.get("/")
    assert response.status_code == 403
    assert "no callsign" in response.json()["error"]


async def test_a_revoked_certificate_is_refused_once_the_crl_lists_it(served: Served):
    cert, key = served.ca.user("W1AW")
    context = served.ca.client_context(cert, key)
    async with served.auth_client(context) as auth:
        assert (await auth.get("/")).status_code == 200
        (served.ca.folder / "crl.pem").write_bytes(served.ca.crl([cert]))  # the CRL file is re-read
        response = await auth.get("/")
    assert response.status_code == 403
    assert "revoked" in response.json()["error"]


async def test_a_crl_signed_by_someone_else_revokes_nothing(served: Served):
    cert, key = served.ca.user("W1AW")
    impostor = LotwCA(served.ca.folder / "impostor")  # same CA name, other key
    (served.ca.folder / "crl.pem").write_bytes(impostor.crl([cert]))
    async with served.auth_client(served.ca.client_context(cert, key)) as auth:
        assert (await auth.get("/")).status_code == 200


async def test_a_certificate_from_another_ca_fails_the_handshake_with_unknown_ca(served: Served):
    other = LotwCA(served.ca.folder / "other", name=x509.Name.from_rfc4514_string("CN=Some Other CA,O=Elsewhere"))
    cert, key = other.user("W1AW")
    with pytest.raises(ssl.SSLError, match="(?i)unknown.ca"):
        await raw_https_get(served.auth_port, served.ca.client_context(cert, key))
    assert await users(served) == []


async def test_forged_self_signed_certificates_with_real_looking_subjects_are_refused(served: Served):
    forgeries = [self_signed(lotw_subject("W1AW")),  # the user's own subject, self-signed
                 self_signed(lotw_subject("W1AW"), issuer=LOTW_CA_NAME),  # claims ARRL as issuer
                 self_signed(LOTW_CA_NAME)]  # a copy of the CA's name as its own root
    for cert, key in forgeries:
        with pytest.raises(ssl.SSLError):
            await raw_https_get(served.auth_port, served.ca.client_context(cert, key))
    assert await users(served) == []


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_only_tls_1_2_and_later(served: Served):
    cert, key = served.ca.user("W1AW")
    context = served.ca.client_context(cert, key)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError):
        await raw_https_get(served.auth_port, context)


async def test_a_valid_certificates_identity_replayed_in_headers_on_the_main_port_is_never_trusted(served: Served):
    cert, key = served.ca.user("W1AW")
    async with served.auth_client(served.ca.client_context(cert, key)) as auth:  # W1AW exists, at high
        assert (await auth.get("/")).status_code == 200
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    spoofed = {"X-Client-DN": cert.subject.rfc4514_string(), "X-SSL-Client-S-DN": "/1.3.6.1.4.1.12348.1.1=W1AW",
               "X-SSL-Client-Verify": "SUCCESS", "X-SSL-Client-Cert": quote(pem),
               "X-Client-Cert": pem.replace("\n", ""), "X-Forwarded-User": "W1AW", "X-Remote-User": "W1AW",
               "X-Callsign": "W1AW", "Remote-User": "W1AW"}
    for path in ("/api/me", "/api/qsos"):
        raw = await raw_https_get(served.running.http_port, served.ca.client_context(cert, key), path, spoofed)
        assert raw.startswith(b"HTTP/1.1 401"), raw[:100]
    async with served.main_client(headers=spoofed) as client:
        response = await client.post("/api/spots", json={"dx": "IP0TRC", "freq": 14025})
        assert response.status_code == 401
        assert json.loads(response.text)["error"].startswith("sign in first")
    # and the same headers do not stand in for a certificate on the sign-in listener either
    async with served.auth_client(served.ca.client_context()) as auth:
        assert (await auth.get("/", headers=spoofed)).status_code == 401


async def test_the_main_port_does_not_ask_for_client_certificates(served: Served):
    async with httpx.AsyncClient(verify=served.ca.client_context(*served.ca.user("W1AW"))) as client:
        assert (await client.get(f"{served.main}/api/me")).status_code == 401


def test_configuration_errors_are_one_clear_line(lotw: LotwCA, tmp_path):
    from hamsrv import config as config_mod
    from hamsrv.errors import ConfigError
    from hamsrv.http.mtls import ClientAuthorities

    with pytest.raises(ConfigError, match="HAMSRV_CLIENT_CA needs HAMSRV_TLS_CERT"):
        config_mod.load({}, env={"HAMSRV_CLIENT_CA": str(lotw.bundle)})
    with pytest.raises(ConfigError, match="HAMSRV_CLIENT_CA: no such file"):
        config_mod.load({}, env={"HAMSRV_CLIENT_CA": str(tmp_path / "missing.pem")})
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigError, match="not a PEM certificate bundle"):
        ClientAuthorities(junk, None)
    with pytest.raises(ConfigError, match="HAMSRV_CLIENT_CRL .* not a readable CRL"):
        ClientAuthorities(lotw.bundle, junk)
    cert, key = lotw.server_files()
    config = config_mod.load({}, env={"HAMSRV_CLIENT_CA": str(lotw.bundle), "HAMSRV_TLS_CERT": str(cert),
                                      "HAMSRV_TLS_KEY": str(key), "HAMSRV_SMTP_URL": "smtp+starttls://u:p@mail:587"})
    assert (config.auth.host, config.auth.port) == ("127.0.0.1", 8444)
    with pytest.raises(ConfigError, match="HAMSRV_SMTP_URL"):
        config_mod.load({}, env={"HAMSRV_SMTP_URL": "http://mail"})


async def test_the_page_learns_the_sign_in_ways_and_the_certificate_url(served: Served):
    async with served.main_client() as browser:
        ways = (await browser.get("/api/auth/ways")).json()
    assert ways == {"certificate": f"https://127.0.0.1:{served.auth_port}/", "email": False, "qrz": True}
