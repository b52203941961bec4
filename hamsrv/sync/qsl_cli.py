"""`hamsrv keys new|rotate` (the keys sealing stored passwords) and `hamsrv qsl sync CALL`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import trio

from hamsrv.db.database import Database
from hamsrv.identity.vault import (
    KEY_FILE,
    Vault,
    encode_key,
    new_key,
    parse_keys,
    read_key_file,
    write_key_file,
)
from hamsrv.sync.qsl_store import reseal_all

Command = Callable[..., argparse.ArgumentParser]


async def rotate_keys(db: Database, secret_key: str | None, data_dir: Any) -> str:
    """Seal every stored login with the current key; with a key file, make a new key first. Crash-safe:
    the key file holds the new and the old keys until every login is resealed."""
    if secret_key:
        vault = Vault(parse_keys(secret_key, "HAMSRV_SECRET_KEY"))
        resealed, current = await reseal_all(db, vault)
        return (f"{resealed} stored logins resealed with the first key of HAMSRV_SECRET_KEY ({current} had it "
                "already); the other keys may now be removed from HAMSRV_SECRET_KEY")
    path = data_dir / KEY_FILE
    old = [encode_key(k) for k in (read_key_file(path) if path.exists() else [])]
    fresh = new_key()
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
    write_key_file(path, [fresh, *old])  # both: a crash below leaves every login readable
    resealed, _ = await reseal_all(db, Vault(parse_keys(fresh + "," + ",".join(old), str(path))))
    write_key_file(path, [fresh])
    return f"new key in {path}; {resealed} stored logins resealed with it, the old key is gone"


def add_commands(command: Command, sub: Any) -> None:
    """Add `keys` and `qsl` to the hamsrv command (see hamsrv.cli.build_parser)."""
    from hamsrv.cli import _config, _with_db

    def cmd_keys_new(args: argparse.Namespace) -> int:
        print(new_key())
        return 0

    def cmd_keys_rotate(args: argparse.Namespace) -> int:
        cfg = _config(args)

        async def action(db: Database) -> None:
            print(await rotate_keys(db, cfg.secret_key, cfg.data_dir))

        trio.run(_with_db, cfg, action)
        return 0

    keys = sub.add_parser("keys", help="the keys sealing stored LoTW/eQSL passwords").add_subparsers(
        dest="keys_command", required=True)
    command("new", cmd_keys_new, "print a new random key (for HAMSRV_SECRET_KEY)", keys)
    command("rotate", cmd_keys_rotate, "reseal every stored password with the current key "
            "(with the key file: a new key)", keys)
