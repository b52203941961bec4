"""`hamsrv keys new|rotate` (the keys sealing stored passwords) and `hamsrv qsl sync CALL`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import trio

from hamsrv.cliargs import config_from_args, with_db
from hamsrv.config import Config
from hamsrv.db import qsl as qsl_sql
from hamsrv.db.database import Database
from hamsrv.errors import HamsrvError
from hamsrv.identity.vault import (
    KEY_FILE,
    Vault,
    encode_key,
    new_key,
    parse_keys,
    read_key_file,
    write_key_file,
)
from hamsrv.sync.qsl_store import SERVICE_NAMES, SERVICES, reseal_all

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


async def sync_user(config: Config, db: Database, call: str, services: list[str],
                    say: Callable[[str], None]) -> bool:
    """Run the user's syncs now, as the server's scheduler would (same lock, same stored health);
    True when every one succeeded."""
    from hamsrv.identity.tokens import get_user
    from hamsrv.sync.qsl import QslService
    from hamsrv.sync.scheduler import PgStateStore, Scheduler

    user = await get_user(db, call)
    if user is None:
        raise HamsrvError(f"no user {call.upper()}")
    linked = await qsl_sql.linked_services(db, user["id"])
    wanted = [s for s in services if s in linked]
    if not wanted:
        raise HamsrvError(f"{user['callsign']} has no {' or '.join(SERVICE_NAMES[s] for s in services)} login "
                          "stored (PUT /api/qsl/credentials/SERVICE)")
    qsl = QslService.from_config(config, db)
    scheduler = Scheduler(PgStateStore(db), node=config.node_id)
    ok = True
    for service in wanted:
        def progress(text: str, name: str = SERVICE_NAMES[service]) -> None:
            say(f"{name}: {text}")
        state = await scheduler.run_once(qsl.job(user, service), progress=progress)
        ok = ok and state.status == "ok"
    return ok


def add_commands(command: Command, sub: Any) -> None:
    """Add `keys` and `qsl` to the hamsrv command (see hamsrv.cli.build_parser)."""

    def cmd_keys_new(args: argparse.Namespace) -> int:
        print(new_key())
        return 0

    def cmd_keys_rotate(args: argparse.Namespace) -> int:
        cfg = config_from_args(args)

        async def action(db: Database) -> None:
            print(await rotate_keys(db, cfg.secret_key, cfg.data_dir))

        trio.run(with_db, cfg, action)
        return 0

    keys = sub.add_parser("keys", help="the keys sealing stored LoTW/eQSL passwords").add_subparsers(
        dest="keys_command", required=True)
    command("new", cmd_keys_new, "print a new random key (for HAMSRV_SECRET_KEY)", keys)
    command("rotate", cmd_keys_rotate, "reseal every stored password with the current key "
            "(with the key file: a new key)", keys)

    def cmd_qsl_sync(args: argparse.Namespace) -> int:
        cfg = config_from_args(args)

        def say(text: str) -> None:
            print(f"{args.callsign.upper()} {text}", file=sys.stderr, flush=True)

        async def action(db: Database) -> bool:
            return await sync_user(cfg, db, args.callsign, [args.service] if args.service else list(SERVICES), say)

        return 0 if trio.run(with_db, cfg, action) else 1

    qsl = sub.add_parser("qsl", help="LoTW and eQSL confirmations").add_subparsers(dest="qsl_command", required=True)
    p = command("sync", cmd_qsl_sync, "download a user's LoTW/eQSL confirmations now and match them to the log "
                "(progress and outcome on stderr; exit 1 when one failed)", qsl)
    p.add_argument("callsign")
    p.add_argument("--service", choices=SERVICES, help="only this service (default: every linked one)")
