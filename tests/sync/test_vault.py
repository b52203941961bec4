"""The vault sealing stored passwords: AES-GCM, keys from the configuration or a 0600 key file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hamsrv.errors import ConfigError
from hamsrv.identity.vault import KEY_FILE, Vault, VaultError, new_key, parse_keys


@given(st.binary(max_size=2000), st.text(max_size=40))
def test_seal_then_open_gives_the_plaintext_back(plain: bytes, context: str) -> None:
    vault = Vault(parse_keys(new_key(), "test"))
    sealed = vault.seal(plain, context)
    assert vault.open(sealed, context) == plain
    assert len(plain) < 8 or plain not in sealed  # short ones may occur in random bytes by chance


def test_a_secret_is_bound_to_its_row_and_its_key() -> None:
    vault = Vault(parse_keys(new_key(), "test"))
    sealed = vault.seal(b"hunter2", "qsl:lotw:1")
    with pytest.raises(VaultError, match="moved to another row"):
        vault.open(sealed, "qsl:lotw:2")
    flipped = bytearray(sealed)
    flipped[-1] ^= 1
    with pytest.raises(VaultError):
        vault.open(bytes(flipped), "qsl:lotw:1")
    with pytest.raises(VaultError, match="no longer has"):
        Vault(parse_keys(new_key(), "test")).open(sealed, "qsl:lotw:1")


def test_every_key_opens_and_the_first_seals() -> None:
    old, new = new_key(), new_key()
    sealed_old = Vault(parse_keys(old, "t")).seal(b"pw", "c")
    both = Vault(parse_keys(f"{new}, {old}", "t"))
    assert both.open(sealed_old, "c") == b"pw"
    assert not both.sealed_with_current(sealed_old)
    assert both.sealed_with_current(both.seal(b"pw", "c"))


@pytest.mark.parametrize("text", ["", "short", "!!!!", "a" * 44])
def test_bad_keys_are_refused_with_the_setting_named(text: str) -> None:
    with pytest.raises(ConfigError, match="HAMSRV_SECRET_KEY"):
        Vault.load(text or ",", Path("/nonexistent"))


def test_the_key_file_is_created_with_mode_0600_and_reused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    vault = Vault.load(None, data)
    path = data / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sealed = vault.seal(b"pw", "c")
    assert Vault.load(None, data).open(sealed, "c") == b"pw"  # the same key next time


def test_a_key_file_others_may_read_is_refused(tmp_path: Path) -> None:
    Vault.load(None, tmp_path)
    os.chmod(tmp_path / KEY_FILE, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        Vault.load(None, tmp_path)


def test_a_configured_key_wins_over_the_key_file(tmp_path: Path) -> None:
    vault = Vault.load(new_key(), tmp_path)
    assert vault.key_file is None and not (tmp_path / KEY_FILE).exists()


@given(st.text(max_size=200))
def test_any_key_text_gives_keys_or_a_config_error(text: str) -> None:
    try:
        keys = parse_keys(text, "HAMSRV_SECRET_KEY")
    except ConfigError as exc:
        assert "HAMSRV_SECRET_KEY" in str(exc)
    else:
        assert keys and all(len(k) == 32 for k in keys)


@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=4), st.booleans())
def test_keys_read_back_in_either_base64_alphabet(keys: list[bytes], urlsafe: bool) -> None:
    import base64
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    text = ",".join(encode(k).decode().rstrip("=" if urlsafe else "") for k in keys)
    assert parse_keys(text, "t") == keys


def _load_key(folder: str) -> str:
    from hamsrv.identity.vault import Vault, encode_key

    return encode_key(Vault.load(None, Path(folder)).keys[0])


def test_workers_starting_together_share_one_key_file(tmp_path: Path) -> None:
    """`serve --workers N` starts N processes at once on a new data dir: none may read a half-written
    key file (it said "no key" in CI), and all end up with the one key that was put in place."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(6) as pool:
        for attempt in range(5):
            folder = tmp_path / str(attempt)
            keys = pool.map(_load_key, [str(folder)] * 12)
            assert len(set(keys)) == 1
            assert sorted(p.name for p in folder.iterdir()) == ["secret.key"]  # no temporary file left
