"""Secrets at rest (LoTW and eQSL passwords): AES-256-GCM with keys from the configuration or a key file.

Keys come from `HAMSRV_SECRET_KEY` (one or more base64 keys, comma separated) or else from
`secret.key` in the data dir, created on first use with mode 0600 (one key a line). The first key
encrypts; every key decrypts, so a key can be replaced without a moment when old secrets are unreadable
(`hamsrv keys rotate`). Each ciphertext names its key (4 bytes of the key's SHA-256) and is bound to
where it is stored (`context`, e.g. "qsl:lotw:42"), so a row copied onto another user's does not open.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hamsrv.errors import ConfigError, HamsrvError

KEY_FILE = "secret.key"
KEY_BYTES = 32  # AES-256
VERSION = b"\x01"
NONCE_BYTES = 12  # the GCM standard nonce; random, far below the 2^32 messages a key may seal this way


class VaultError(HamsrvError):
    """A stored secret cannot be opened: its key is gone, or the data was changed."""


def new_key() -> str:
    """A fresh key as the configuration and the key file write it."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def parse_keys(text: str, source: str) -> list[bytes]:
    keys = []
    for part in text.replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            standard = part.replace("-", "+").replace("_", "/")  # URL-safe base64 too
            key = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise ConfigError(f"{source}: each key must be {KEY_BYTES} bytes in base64 "
                              "(make one with `hamsrv keys new`)")
        keys.append(key)
    if not keys:
        raise ConfigError(f"{source}: no key")
    return keys


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:4]


class Vault:
    """Seals and opens small secrets; `keys[0]` seals, any key opens."""

    def __init__(self, keys: list[bytes], key_file: Path | None = None):
        if not keys:
            raise ValueError("a vault needs a key")
        self.keys = list(keys)
        self.key_file = key_file  # None when the keys come from the configuration
        self._by_id = {key_id(k): AESGCM(k) for k in keys}

    @classmethod
    def load(cls, secret_key: str | None, data_dir: Path) -> Vault:
        """The keys from the configuration, else from the key file (created with mode 0600)."""
        if secret_key:
            return cls(parse_keys(secret_key, "HAMSRV_SECRET_KEY"))
        path = data_dir / KEY_FILE
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):  # another process made it meanwhile: use theirs
                write_key_file(path, [new_key()], exclusive=True)
        return cls(read_key_file(path), key_file=path)

    def seal(self, plaintext: bytes, context: str) -> bytes:
        key = self.keys[0]
        nonce = secrets.token_bytes(NONCE_BYTES)
        return VERSION + key_id(key) + nonce + self._by_id[key_id(key)].encrypt(nonce, plaintext, context.encode())

    def open(self, sealed: bytes, context: str) -> bytes:
        if len(sealed) < 1 + 4 + NONCE_BYTES + 16 or sealed[:1] != VERSION:
            raise VaultError("a stored secret is damaged")
        aead = self._by_id.get(bytes(sealed[1:5]))
        if aead is None:
            raise VaultError("a stored secret was sealed with a key this server no longer has "
                             "(HAMSRV_SECRET_KEY or the key file changed); enter the password again")
        try:
            return aead.decrypt(bytes(sealed[5:5 + NONCE_BYTES]), bytes(sealed[5 + NONCE_BYTES:]), context.encode())
        except InvalidTag:
            raise VaultError("a stored secret does not open (changed, or moved to another row)") from None

    def sealed_with_current(self, sealed: bytes) -> bool:
        return bytes(sealed[1:5]) == key_id(self.keys[0])


def read_key_file(path: Path) -> list[bytes]:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the key file {path}: {exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"the key file {path} may be read by other users (mode {stat.S_IMODE(mode):04o}); "
                          f"run: chmod 600 {path}")
    return parse_keys(text, f"key file {path}")


def write_key_file(path: Path, keys: list[str], *, exclusive: bool = False) -> None:
    """Write keys (first = current) with mode 0600: a new file, or atomically replacing the old one."""
    data = ("\n".join(keys) + "\n").encode()
    # Written whole under a name of this process first, then put in place in one step: a worker starting
    # beside this one never reads a half-written (or empty) key file.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.new")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        os.fsync(out.fileno())
    if not exclusive:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # FileExistsError when another process put its key file first
    finally:
        tmp.unlink()


def encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode()
