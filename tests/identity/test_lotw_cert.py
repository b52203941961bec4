"""The sans-I/O certificate checks on DER bytes, with hypothesis: the identity read back is the one
written, and no input makes them raise anything but CertificateRefused."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hamsrv.identity.lotw_cert import CertificateRefused, check_certificate, read_identity
from tests.tls import LotwCA

NOW = dt.datetime.now(dt.UTC)
CA = LotwCA(Path(tempfile.mkdtemp(prefix="hamsrv-lotw-ca-")))
calls = st.from_regex(r"[A-Z]{1,2}[0-9][A-Z]{1,3}(/P)?", fullmatch=True)
dates = st.dates(min_value=dt.date(1945, 11, 1), max_value=dt.date(2099, 12, 31))


def der(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def check(data: bytes | None, crls=()):
    return check_certificate(data, [CA.cert], list(crls), NOW)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls, st.integers(0, 999), dates, dates)
def test_identity_round_trip(call: str, dxcc: int, qso_from: dt.date, qso_to: dt.date) -> None:
    cert, _ = CA.user(call.lower(), dxcc=str(dxcc), qso_from=qso_from.isoformat(), qso_to=qso_to.isoformat())
    identity = check(der(cert))
    assert (identity.callsign, identity.dxcc) == (call, dxcc)
    assert (identity.qso_not_before, identity.qso_not_after) == (qso_from, qso_to)
    assert identity.serial == cert.serial_number


@settings(max_examples=30, deadline=None)
@given(st.text(max_size=12) | st.none(), st.text(max_size=12) | st.none())
def test_odd_extension_values_read_as_unknown(dxcc: str | None, date: str | None) -> None:
    cert, _ = CA.user("W1AW", dxcc=dxcc, qso_from=date, qso_to=None)
    identity = read_identity(cert)
    assert identity.dxcc is None or (dxcc is not None and identity.dxcc == int(dxcc.strip("\x00 ")))
    assert identity.qso_not_after is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_are_refused_cleanly(data: bytes) -> None:
    with pytest.raises(CertificateRefused):
        check(data)


VALID = der(CA.user("W1AW")[0])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=4))
def test_corrupted_certificates_never_raise_anything_else(changes: list[tuple[int, int]]) -> None:
    data = bytearray(VALID)
    for at, value in changes:
        data[at] = value
    try:
        identity = check(bytes(data))
    except CertificateRefused:
        return
    assert identity.callsign == "W1AW"  # only a change the signature does not cover can pass


def test_refusals_each_say_why() -> None:
    with pytest.raises(CertificateRefused, match="no client certificate") as caught:
        check(None)
    assert caught.value.status == 401
    with pytest.raises(CertificateRefused, match="expired on"):
        check(der(CA.user("W1AW", not_before=NOW - dt.timedelta(days=9), not_after=NOW - dt.timedelta(days=1))[0]))
    with pytest.raises(CertificateRefused, match="not valid yet"):
        check(der(CA.user("W1AW", not_before=NOW + dt.timedelta(days=1))[0]))
    with pytest.raises(CertificateRefused, match="no callsign"):
        check(der(CA.user(None)[0]))
    with pytest.raises(CertificateRefused, match="not a callsign"):
        check(der(CA.user("not a call!")[0]))
    with pytest.raises(CertificateRefused, match="not issued by a trusted"):
        check(der(LotwCA(Path(tempfile.mkdtemp(prefix="hamsrv-other-ca-"))).user("W1AW")[0]))
    revoked = CA.user("W1AW")[0]
    crl = x509.load_pem_x509_crl(CA.crl([revoked]))
    with pytest.raises(CertificateRefused, match="revoked"):
        check(der(revoked), [crl])
    assert check(der(CA.user("W1AW")[0]), [crl]).callsign == "W1AW"
