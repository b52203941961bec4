"""What the QSL sync keeps in the database: sealed logins, per-user sync state, confirmations, notices.

Every query is scoped to one user. Passwords are sealed by the vault before they reach a query and are
opened only to make a request to LoTW or eQSL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from hamsrv.db import qsl, sync_state
from hamsrv.db.database import Database, Row
from hamsrv.identity.vault import Vault

SERVICES = ("lotw", "eqsl")
SERVICE_NAMES = {"lotw": "LoTW", "eqsl": "eQSL"}


@dataclass(frozen=True)
class Login:
    username: str
    password: str

    def __repr__(self) -> str:  # never the password, not even in a traceback
        return f"Login(username={self.username!r}, password=***)"


def _context(user_id: int, service: str) -> str:
    return f"qsl:{service}:{user_id}"


def seal_login(vault: Vault, user_id: int, service: str, login: Login) -> bytes:
    plain = json.dumps({"username": login.username, "password": login.password}).encode()
    return vault.seal(plain, _context(user_id, service))


def open_login(vault: Vault, user_id: int, service: str, sealed: bytes) -> Login:
    data = json.loads(vault.open(sealed, _context(user_id, service)))
    return Login(data["username"], data["password"])


def job_name(service: str, call: str) -> str:
    """The scheduler job of one user's sync with one service; its sync_state row holds the health."""
    return f"{service}:{call}"


async def save_login(db: Database, vault: Vault, user: Row, service: str, login: Login) -> None:
    """Store (or replace) a login and clear the sync's failures. A different username is a different
    account, so its resume point starts over."""
    old = await load_login(db, vault, user["id"], service)
    same_account = old is not None and old.username == login.username
    async with db.transaction() as conn:
        await qsl.put_login(conn, user["id"], service, seal_login(vault, user["id"], service, login))
        await sync_state.restart(conn, job_name(service, user["callsign"]), keep_cursor=same_account)


async def delete_login(db: Database, user: Row, service: str) -> bool:
    """Forget a login and its sync's state (its confirmations stay); False when there was none."""
    async with db.transaction() as conn:
        deleted = await qsl.delete_login(conn, user["id"], service)
        await sync_state.delete_on(conn, job_name(service, user["callsign"]))
        return deleted


async def load_login(db: Database, vault: Vault, user_id: int, service: str) -> Login | None:
    sealed = await qsl.sealed_login(db, user_id, service)
    return None if sealed is None else open_login(vault, user_id, service, sealed)


async def reseal_all(db: Database, vault: Vault) -> tuple[int, int]:
    """Seal every stored login with the vault's current key (after a key change); returns
    (resealed, already current). One transaction: all or nothing."""
    resealed = current = 0
    async with db.transaction() as conn:
        for row in await qsl.all_logins_for_update(conn):
            user_id, service, secret = row["user_id"], row["service"], bytes(row["secret"])
            if vault.sealed_with_current(secret):
                current += 1
                continue
            login = open_login(vault, user_id, service, secret)
            await qsl.reseal(conn, user_id, service, seal_login(vault, user_id, service, login))
            resealed += 1
    return resealed, current
