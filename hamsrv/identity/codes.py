"""Pending sign-ins: the 6-digit e-mail code and the QRZ biography token. Secrets are stored salted and
hashed; a code lives 10 minutes and allows 5 tries, counted before the comparison so that parallel
guesses cannot exceed them."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from hamsrv.db import signin_codes
from hamsrv.db.database import Database

EMAIL_CODE_TTL = timedelta(minutes=10)
QRZ_CODE_TTL = timedelta(hours=24)  # time to edit the biography
MAX_TRIES = 5
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I


def new_email_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def new_qrz_code() -> str:
    """`HAMS-` and 10 random letters and digits (50 bits), to paste into the QRZ biography."""
    return "HAMS-" + "".join(secrets.choice(_ALPHABET) for _ in range(10))


def mask_email(address: str) -> str:
    """`k***@example.org`: enough for the owner to recognise, too little to harvest."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain}"


def _hash(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode()).digest()


async def store(db: Database, callsign: str, method: str, secret: str, ttl: timedelta,
                public_code: str | None = None) -> None:
    """Start a sign-in; it replaces the callsign's pending one of the same method (and its tries)."""
    salt = secrets.token_bytes(16)
    await signin_codes.put(db, callsign, method, salt, _hash(salt, secret), public_code, ttl)


@dataclass(frozen=True)
class Attempt:
    ok: bool
    message: str = ""  # why not
    public_code: str | None = None
    tries_left: int = 0
    locked: bool = False  # the tries are spent: only a new code helps


async def attempt(db: Database, callsign: str, method: str, secret: str, *, consume: bool = True) -> Attempt:
    """Check `secret` against the callsign's pending sign-in, spending one try (given back on success
    without `consume`). On success the sign-in is deleted when `consume` (the QRZ check deletes it only
    once the page shows the code)."""
    row = await signin_codes.take_try(db, callsign, method, MAX_TRIES)
    if row is None:
        pending = await signin_codes.pending(db, callsign, method)
        if pending is None or not pending["live"]:
            return Attempt(False, f"no pending sign-in for {callsign} (or it expired): request a new code")
        return Attempt(False, f"too many wrong tries ({MAX_TRIES}) for this code: request a new one",
                       locked=True)
    left = MAX_TRIES - row["tries"]
    if not hmac.compare_digest(_hash(bytes(row["salt"]), secret), bytes(row["secret_sha256"])):
        return Attempt(False, f"wrong code; {left} {'try' if left == 1 else 'tries'} left", tries_left=left)
    if consume:
        await finish(db, callsign, method)
    else:  # only wrong secrets count: the QRZ check may be repeated until the page shows the code
        await signin_codes.give_back_try(db, callsign, method)
        left += 1
    return Attempt(True, public_code=row["public_code"], tries_left=left)


async def finish(db: Database, callsign: str, method: str) -> None:
    await signin_codes.delete(db, callsign, method)
