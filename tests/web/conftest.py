"""The servers the page's tests share with other suites (one definition each): the local SMTP and
"QRZ" servers and the HTTPS app with the certificate listener (tests/identity), a real PowerDNS
(tests/sync)."""

from tests.identity.conftest import lotw, served, smtp  # noqa: F401
from tests.identity.test_qrz import qrz  # noqa: F401
from tests.sync.conftest import powerdns  # noqa: F401
