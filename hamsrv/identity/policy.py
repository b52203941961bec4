"""The identity settings the HTTP routes use, with the rate-limit buckets they share."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hamsrv.identity.ratelimit import Buckets, Rate

QRZ_DEFAULT_URL = "https://www.qrz.com/db/"


@dataclass
class Policy:
    session_lifetime: timedelta = timedelta(days=30)
    secure_cookie: bool = False  # the main site is served over TLS: cookies get `Secure`
    smtp_url: str | None = None  # e-mail sign-in is off without it
    mail_from: str = "hamsrv@localhost"
    qrz_url: str = QRZ_DEFAULT_URL  # the callsign is appended
    qrz_timeout: float = 10.0
    api_rate: float = 50.0  # requests a second per IP address and per user on /api/
    signin_rate: float = 10.0  # sign-in attempts a minute per IP address
    clock: Callable[[], float] = time.monotonic
    api_per_ip: Buckets = field(init=False)
    api_per_user: Buckets = field(init=False)
    signin_per_ip: Buckets = field(init=False)
    codes_per_call: Buckets = field(init=False)

    def __post_init__(self) -> None:
        self.api_per_ip = Buckets(Rate(self.api_rate, self.api_rate * 10))
        self.api_per_user = Buckets(Rate(self.api_rate, self.api_rate * 10))
        self.signin_per_ip = Buckets(Rate.per_minute(self.signin_rate))
        # e-mail codes and QRZ tokens for one callsign, from anywhere: 3, then one every 5 minutes
        self.codes_per_call = Buckets(Rate.per_minute(0.2, 3))

    @classmethod
    def from_config(cls, config: Any) -> Policy:
        return cls(session_lifetime=timedelta(days=config.session_days), secure_cookie=config.tls,
                   smtp_url=config.smtp_url, mail_from=config.mail_from, qrz_url=config.qrz_url,
                   api_rate=config.rate_api, signin_rate=config.rate_signin)
