"""The LoTW certificate sign-in listener (HAMSRV_AUTH_BIND, on only with HAMSRV_CLIENT_CA): hamsrv
terminates the mutual TLS itself, no proxy passes identity headers.

The handshake asks for a client certificate (optional, so that "none" gets a JSON answer rather than a
TLS alert) and OpenSSL verifies its chain against the CA bundle; a certificate from another CA (or a
self-signed forgery) ends in the handshake with the TLS alert "unknown CA", the one refusal that cannot
be JSON. OpenSSL is told to skip the time checks, so `check_certificate` can refuse an expired or
not-yet-valid certificate, a revoked one (HAMSRV_CLIENT_CRL) and one without a callsign with its own
JSON message. `GET /` then signs in with trust "high" and sets the main site's session cookie.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import ssl
from pathlib import Path
from typing import Any

import trio
from cryptography import x509
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from hamsrv.config import Config
from hamsrv.errors import ConfigError
from hamsrv.http.common import ApiError, AppState, error, rate_limited
from hamsrv.http.listener import peer_certificate, serve_public
from hamsrv.http.signin import signed_in
from hamsrv.identity.lotw_cert import CertificateRefused, check_certificate

log = logging.getLogger(__name__)

X509_V_FLAG_NO_CHECK_TIME = 0x200000  # OpenSSL: leave validity dates to check_certificate


def mtls_context(cert: Path, key: Path, client_ca: Path) -> ssl.SSLContext:
    """TLS 1.2+, our server certificate, client certificates verified against `client_ca`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
        context.load_verify_locations(cafile=client_ca)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"HAMSRV_CLIENT_CA / HAMSRV_TLS_CERT: cannot load them: {exc}") from None
    context.verify_mode = ssl.CERT_OPTIONAL
    context.verify_flags |= X509_V_FLAG_NO_CHECK_TIME  # type: ignore[assignment]
    context.set_alpn_protocols(["http/1.1"])
    return context


def _load_crls(data: bytes) -> list[x509.CertificateRevocationList]:
    if b"-----BEGIN X509 CRL-----" not in data:
        return [x509.load_der_x509_crl(data)]
    blocks = data.split(b"-----BEGIN X509 CRL-----")[1:]
    return [x509.load_pem_x509_crl(b"-----BEGIN X509 CRL-----" + b) for b in blocks]


class ClientAuthorities:
    """The CA bundle's certificates and the CRLs, re-read when the CRL file changes."""

    def __init__(self, client_ca: Path, crl_path: Path | None):
        try:
            self.certificates = x509.load_pem_x509_certificates(client_ca.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"HAMSRV_CLIENT_CA {client_ca}: not a PEM certificate bundle ({exc})") from None
        self.crl_path = crl_path
        self._crls: list[x509.CertificateRevocationList] = []
        self._crl_stamp: tuple[int, int] | None = None
        if crl_path is not None and not self._reload():
            raise ConfigError(f"HAMSRV_CLIENT_CRL {crl_path}: not a readable CRL (PEM or DER)")

    def _reload(self) -> bool:
        assert self.crl_path is not None
        try:
            stat = os.stat(self.crl_path)
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._crl_stamp:
                self._crls, self._crl_stamp = _load_crls(self.crl_path.read_bytes()), stamp
            return True
        except (OSError, ValueError) as exc:  # a half-written update: keep the lists we have
            log.error("HAMSRV_CLIENT_CRL %s: cannot read it (%s); keeping the previous CRLs", self.crl_path, exc)
            return False

    def crls(self) -> list[x509.CertificateRevocationList]:
        if self.crl_path is not None:
            self._reload()
        return self._crls


def create_auth_app(state: AppState, authorities: ClientAuthorities) -> QuartTrio:
    app = QuartTrio(__name__, static_folder=None)
    app.extensions["hamsrv"] = state

    @app.errorhandler(ApiError)
    async def on_api_error(exc: ApiError) -> Response:
        response = error(exc.status, str(exc), exc.field)
        if exc.retry_after:
            response.headers["Retry-After"] = exc.retry_after
        return response

    @app.errorhandler(HTTPException)
    async def on_http_error(exc: HTTPException) -> Response:
        return error(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    async def on_unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on the certificate sign-in listener")
        return error(500, "internal error (logged on the server)")

    @app.get("/")
    async def certificate_signin() -> Any:
        rate_limited(state.identity.signin_per_ip, request.remote_addr or "?", "sign-in attempts from this address")
        try:
            identity = check_certificate(peer_certificate.get(), authorities.certificates, authorities.crls(),
                                         dt.datetime.now(dt.UTC))
        except CertificateRefused as exc:
            log.info("certificate sign-in refused from %s: %s", request.remote_addr, exc)
            response = error(exc.status, str(exc), "certificate")
            if exc.status == 401:
                response.headers["WWW-Authenticate"] = 'Certificate realm="LoTW"'
            return response
        log.info("certificate sign-in: %s (serial %x)", identity.callsign, identity.serial)
        return await signed_in(state, identity.callsign, "lotw", dxcc=identity.dxcc,
                               qso_not_before=identity.qso_not_before and identity.qso_not_before.isoformat(),
                               qso_not_after=identity.qso_not_after and identity.qso_not_after.isoformat())

    return app


async def serve_auth(state: AppState, config: Config, shutdown: trio.Event, reuse_port: bool = False, *,
                     task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the certificate sign-in listener until `shutdown`; started() reports the bound port."""
    assert config.client_ca is not None and config.tls_cert is not None and config.tls_key is not None
    authorities = ClientAuthorities(config.client_ca, config.client_crl)
    context = mtls_context(config.tls_cert, config.tls_key, config.client_ca)
    await serve_public(create_auth_app(state, authorities), None, config.auth.host, config.auth.port,
                       ssl_context=context, grace=config.shutdown_grace, shutdown=shutdown,
                       reuse_port=reuse_port, task_status=task_status)
