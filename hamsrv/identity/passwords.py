"""Cluster-port passwords: scrypt (stdlib hashlib), run in a worker thread because it is slow on
purpose. Stored as `scrypt$n$r$p$salt_hex$hash_hex`."""

from __future__ import annotations

import hashlib
import hmac
import secrets

import trio

MIN_PASSWORD, MAX_PASSWORD = 8, 200
_N, _R, _P = 2**14, 8, 1  # ~16 MiB and ~50 ms a check


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 << 20, dklen=32)


async def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = await trio.to_thread.run_sync(_derive, password, salt, _N, _R, _P)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


async def check_password(password: str, stored: str | None) -> bool:
    if not stored or len(password) > MAX_PASSWORD:
        return False
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = bytes.fromhex(digest)
        actual = await trio.to_thread.run_sync(_derive, password, bytes.fromhex(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)
