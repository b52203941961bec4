"""A throw-away certificate authority of one: TLS contexts for tests on 127.0.0.1 and localhost."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting that server) for a self-signed certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                         x509.DNSName("localhost")]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory() as folder:  # load_cert_chain wants file paths
        cert_path, key_path = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert_path.write_bytes(cert_pem)
        key_path.write_bytes(key_pem)
        server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return server, client


LOTW_CA_NAME = x509.Name([
    x509.NameAttribute(NameOID.COUNTRY_NAME, "US"), x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CT"),
    x509.NameAttribute(NameOID.LOCALITY_NAME, "Newington"),
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "American Radio Relay League"),
    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Logbook of the World"),
    x509.NameAttribute(NameOID.COMMON_NAME, "Logbook of the World Production CA"),
    x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "arrl.org"),
    x509.NameAttribute(NameOID.EMAIL_ADDRESS, "lotw@arrl.org")])
LOTW_OID = "1.3.6.1.4.1.12348.1."
_NOW = dt.datetime.now(dt.UTC)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def lotw_subject(call: str | None, name: str = "Hiram Percy Maxim") -> x509.Name:
    """A LoTW user's subject DN: the callsign attribute, CN, emailAddress (FACTS.md 3.1)."""
    attrs = [x509.NameAttribute(x509.ObjectIdentifier(LOTW_OID + "1"), call)] if call else []
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, name),
                      x509.NameAttribute(NameOID.EMAIL_ADDRESS, "w1aw@example.org")])


def lotw_extensions(builder: x509.CertificateBuilder, dxcc: str | None = "291",
                    qso_from: str | None = "1945-11-01", qso_to: str | None = "2035-12-31") -> x509.CertificateBuilder:
    for suffix, value in (("2", qso_from), ("3", qso_to), ("4", dxcc)):
        if value is not None:
            oid = x509.ObjectIdentifier(LOTW_OID + suffix)
            builder = builder.add_extension(x509.UnrecognizedExtension(oid, value.encode()), critical=False)
    return builder


class LotwCA:
    """A certificate authority laid out like ARRL's LoTW production CA, issuing callsign certificates,
    a server certificate for 127.0.0.1 and CRLs; writes its files into `folder`."""

    def __init__(self, folder: Path, name: x509.Name = LOTW_CA_NAME):
        self.folder, self.name = folder, name
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(_NOW - dt.timedelta(days=3650)).not_valid_after(_NOW + dt.timedelta(days=3650))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                    critical=True)
                     .sign(self.key, hashes.SHA256()))
        folder.mkdir(parents=True, exist_ok=True)
        self.bundle = folder / "client-ca.pem"
        self.bundle.write_bytes(_pem(self.cert))

    def issue(self, subject: x509.Name, *, not_before: dt.datetime | None = None,
              not_after: dt.datetime | None = None, signer: ec.EllipticCurvePrivateKey | None = None,
              **extensions: str | None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(self.name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(not_before or _NOW - dt.timedelta(days=1))
                   .not_valid_after(not_after or _NOW + dt.timedelta(days=365)))
        return lotw_extensions(builder, **extensions).sign(signer or self.key, hashes.SHA256()), key

    def user(self, call: str | None = "W1AW", **options: Any) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        return self.issue(lotw_subject(call), **options)

    def server_files(self) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
                .issuer_name(self.name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(_NOW - dt.timedelta(days=1)).not_valid_after(_NOW + dt.timedelta(days=30))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                             x509.DNSName("localhost")]), critical=False)
                .sign(self.key, hashes.SHA256()))
        cert_path, key_path = self.folder / "server.pem", self.folder / "server.key"
        cert_path.write_bytes(_pem(cert))
        key_path.write_bytes(_key_pem(key))
        return cert_path, key_path

    def crl(self, revoked: list[x509.Certificate]) -> bytes:
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.name)
                   .last_update(_NOW - dt.timedelta(hours=1)).next_update(_NOW + dt.timedelta(days=7)))
        for cert in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(cert.serial_number)
                .revocation_date(_NOW - dt.timedelta(minutes=5)).build())
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    def client_context(self, cert: x509.Certificate | None = None,
                       key: ec.EllipticCurvePrivateKey | None = None) -> ssl.SSLContext:
        """A client trusting this CA's server certificate and presenting `cert` (none: no certificate)."""
        context = ssl.create_default_context(cadata=_pem(self.cert).decode())
        if cert is not None and key is not None:
            with tempfile.TemporaryDirectory() as folder:
                cert_path, key_path = Path(folder) / "c.pem", Path(folder) / "c.key"
                cert_path.write_bytes(_pem(cert))
                key_path.write_bytes(_key_pem(key))
                context.load_cert_chain(cert_path, key_path)
        return context


def self_signed(subject: x509.Name, issuer: x509.Name | None = None,
                **extensions: str | None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A forgery: any subject (and issuer name) you like, signed by a key of one's own."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer or subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(_NOW - dt.timedelta(days=1)).not_valid_after(_NOW + dt.timedelta(days=365)))
    return lotw_extensions(builder, **extensions).sign(key, hashes.SHA256()), key
