"""Cluster-port sign-in (`login: CALL SECRET`): the secret is the account's cluster password (set with
POST /api/cluster-password, as DXSpider's set/password) or one of its API tokens. The account needs
trust medium or more. Guesses are rate-limited per address, as scrypt is slow on purpose."""

from __future__ import annotations

import trio

from hamsrv.db import accounts
from hamsrv.db.database import Database
from hamsrv.errors import DatabaseError
from hamsrv.identity.passwords import check_password
from hamsrv.identity.ratelimit import Buckets, Rate
from hamsrv.identity.sessions import TRUST_LEVELS
from hamsrv.identity.tokens import TOKEN_PREFIX, user_for_token
from hamsrv.model import without_ssid

MIN_TRUST = TRUST_LEVELS["medium"]


class ClusterSignIn:
    def __init__(self, db: Database, rate: Rate | None = None):
        self.db = db
        self.guesses = Buckets(rate or Rate.per_minute(10))  # per peer address

    async def check(self, login: str, secret: str, peer_ip: str) -> bool:
        """Whether `secret` signs in the account of `login` (an SSID such as -2 is allowed)."""
        if self.guesses.take(peer_ip, trio.current_time()) > 0:
            return False
        call = without_ssid(login.upper())
        try:
            if secret.startswith(TOKEN_PREFIX):
                user = await user_for_token(self.db, secret)
                return user is not None and user["callsign"] == call and user["trust_level"] >= MIN_TRUST
            row = await accounts.cluster_login_row(self.db, call)
        except DatabaseError:
            return False
        return row is not None and row["trust_level"] >= MIN_TRUST and \
            await check_password(secret, row["cluster_password"])
