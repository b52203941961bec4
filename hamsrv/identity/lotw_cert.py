"""LoTW callsign certificates, sans-I/O: read the identity from a DER certificate and decide whether
to accept it (issuer, validity, revocation). Layout: FACTS.md 3.1 (TQSL `tqsllib.cpp`).

The TLS handshake only proves the client holds the key of a certificate our CA bundle signed; the
listener lets the time checks through (see http/mtls.py) so that `check_certificate` can refuse an
expired or not-yet-valid certificate with a message of its own instead of a bare TLS alert.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from hamsrv.model import normalize_call

ARC = "1.3.6.1.4.1.12348.1."
OID_CALLSIGN = x509.ObjectIdentifier(ARC + "1")  # a subject DN attribute, not an extension
OID_QSO_NOT_BEFORE = x509.ObjectIdentifier(ARC + "2")  # extension, ASCII YYYY-MM-DD
OID_QSO_NOT_AFTER = x509.ObjectIdentifier(ARC + "3")
OID_DXCC = x509.ObjectIdentifier(ARC + "4")  # extension, ASCII decimal


class CertificateRefused(Exception):
    """Why a client certificate is not accepted; `status` is the HTTP answer (401 or 403)."""

    def __init__(self, message: str, status: int = 403):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class LotwIdentity:
    callsign: str
    dxcc: int | None
    qso_not_before: dt.date | None
    qso_not_after: dt.date | None
    not_before: dt.datetime
    not_after: dt.datetime
    serial: int
    subject: str


def _ascii_extension(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    try:
        ext = cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
    text = raw.decode("ascii", "replace").strip("\x00 ")
    return text or None


def _date(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None


def _dxcc(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdecimal() and len(text) <= 4 else None


def load_certificate(der: bytes) -> x509.Certificate:
    """Parse a DER certificate; cryptography parses fields lazily, so the ones checked here are read
    now, turning a malformed certificate into one clear refusal."""
    try:
        cert = x509.load_der_x509_certificate(der)
        cert.issuer, cert.subject, cert.serial_number  # noqa: B018
        cert.not_valid_before_utc, cert.not_valid_after_utc  # noqa: B018
        return cert
    except (ValueError, x509.InvalidVersion):  # InvalidVersion is not a ValueError
        raise CertificateRefused("the client certificate is not a readable X.509 certificate") from None


def read_identity(cert: x509.Certificate) -> LotwIdentity:
    """The callsign (subject attribute ...12348.1.1), DXCC entity and QSO date window of a certificate.
    Refused when there is no callsign attribute or it is not a callsign. Unreadable optional
    extensions come back as None (TQSL itself treats them leniently)."""
    try:
        subject = cert.subject
        attrs = subject.get_attributes_for_oid(OID_CALLSIGN)
        extensions_ok = True
        try:
            cert.extensions  # noqa: B018  (parsing them can fail on a malformed certificate)
        except ValueError:
            extensions_ok = False
        subject_text = subject.rfc4514_string()
    except ValueError:
        raise CertificateRefused("the client certificate's subject cannot be read") from None
    if not attrs:
        raise CertificateRefused("the client certificate has no callsign (subject attribute "
                                 f"{OID_CALLSIGN.dotted_string}): it is not a LoTW callsign certificate")
    raw = attrs[0].value
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    call = normalize_call(text)
    if call is None:
        raise CertificateRefused(f"the client certificate's callsign attribute {text[:40]!r} is not a callsign")
    get = (lambda oid: _ascii_extension(cert, oid)) if extensions_ok else (lambda oid: None)
    return LotwIdentity(callsign=call, dxcc=_dxcc(get(OID_DXCC)),
                        qso_not_before=_date(get(OID_QSO_NOT_BEFORE)),
                        qso_not_after=_date(get(OID_QSO_NOT_AFTER)),
                        not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
                        serial=cert.serial_number, subject=subject_text)


def _signed_by(item: x509.Certificate | x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    try:
        if isinstance(item, x509.CertificateRevocationList):
            return item.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
        item.verify_directly_issued_by(issuer)
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def check_certificate(der: bytes | None, authorities: list[x509.Certificate],
                      crls: list[x509.CertificateRevocationList], now: dt.datetime) -> LotwIdentity:
    """The identity of a client certificate the handshake accepted, or CertificateRefused saying why:
    none sent, not issued by one of `authorities`, expired, not yet valid (the certificate or its
    issuer), revoked by a CRL its issuer signed, or no callsign attribute."""
    if not der:
        raise CertificateRefused("no client certificate: sign in with your LoTW callsign certificate "
                                 "(import your .p12 into the browser or pass it to the client)", 401)
    cert = load_certificate(der)
    issuer = next((a for a in authorities if a.subject == cert.issuer and _signed_by(cert, a)), None)
    if issuer is None:
        raise CertificateRefused(f"the client certificate was not issued by a trusted LoTW authority "
                                 f"(issuer: {cert.issuer.rfc4514_string()[:200]})")
    for which, c in (("the client certificate", cert), (f"its issuer {issuer.subject.rfc4514_string()}", issuer)):
        if now < c.not_valid_before_utc:
            raise CertificateRefused(f"{which} is not valid yet: valid from "
                                     f"{c.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
        if now > c.not_valid_after_utc:
            raise CertificateRefused(f"{which} expired on {c.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; "
                                     "renew it in TQSL")
    for crl in crls:
        if crl.issuer == issuer.subject and _signed_by(crl, issuer):
            revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if revoked is not None:
                raise CertificateRefused(f"the client certificate (serial {cert.serial_number:x}) was revoked "
                                         f"on {revoked.revocation_date_utc:%Y-%m-%d}")
    return read_identity(cert)
