"""The `hamsrv` command. Every failure a user can cause ends in one clear line, never a traceback."""

from __future__ import annotations

import argparse
import functools
import logging
import sys
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import trio

from hamsrv import config as config_mod
from hamsrv.db.database import Database
from hamsrv.errors import ConfigError, DatabaseError, HamsrvError
from hamsrv.ingest.cli import add_commands
from hamsrv.sync.cli import add_commands as add_sync_commands
from hamsrv.sync.qsl_cli import add_commands as add_qsl_commands

EXIT_USAGE = 2  # bad configuration or unreachable database, as for argparse errors


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML file with settings (keys as the flags, '_' for '-')")
    for f in fields(config_mod.Config):
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, metavar=f.name.split("_")[-1].upper(),
                            help=f"{f.metadata['help']} [{f.metadata['env']}]")


def _config(args: argparse.Namespace) -> config_mod.Config:
    flags = {f.name: getattr(args, f.name, None) for f in fields(config_mod.Config)}
    return config_mod.load(flags, file=args.config)


async def _with_db(cfg: config_mod.Config, action: Callable[[Database], Awaitable[Any]],
                   run_migrations: bool = True) -> Any:
    db = await Database.open(cfg.database_url, cfg.data_dir, pool_size=2, run_migrations=run_migrations)
    try:
        return await action(db)
    finally:
        await db.close()


def cmd_serve(args: argparse.Namespace) -> int:
    from hamsrv import app, workers

    config = _config(args)
    role = workers.worker_role()
    if role is None and config.workers > 1:
        trio.run(workers.supervise, config)
    else:
        trio.run(functools.partial(app.run, config, role=role))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from hamsrv.db.migrate import migrate

    async def action(db: Database) -> None:
        applied = await migrate(db.pool)
        print("applied: " + ", ".join(applied) if applied else "database schema is up to date")

    trio.run(_with_db, _config(args), action, False)  # False: migrate() itself reports what it applied
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    from hamsrv.identity.tokens import add_user, issue_token

    async def action(db: Database) -> None:
        user = await add_user(db, args.callsign, args.email)
        token = await issue_token(db, user["id"], "cli")
        print(f"user {user['callsign']} created; API token (shown once):\n{token}")

    trio.run(_with_db, _config(args), action)
    return 0


def cmd_user_token(args: argparse.Namespace) -> int:
    from hamsrv.identity.tokens import get_user, issue_token

    async def action(db: Database) -> None:
        user = await get_user(db, args.callsign)
        if user is None:
            raise HamsrvError(f"no user {args.callsign.upper()}")
        print(await issue_token(db, user["id"], args.name))

    trio.run(_with_db, _config(args), action)
    return 0


def cmd_cty_update(args: argparse.Namespace) -> int:
    from hamsrv.cty import install_cty

    cfg = _config(args)
    table = install_cty(args.file, cfg.data_dir)
    print(f"cty.dat installed in {cfg.data_dir}: {len(table)} entities")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hamsrv", description="One trio process for a whole ham platform.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func: Callable[[argparse.Namespace], int], help: str,
                parent: Any = sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help, description=help)
        _add_config_flags(p)
        p.set_defaults(func=func)
        return p

    command("serve", cmd_serve, "run the server (HTTP API, firehose, cluster port, jobs)")
    db = sub.add_parser("db", help="database maintenance").add_subparsers(dest="db_command", required=True)
    command("migrate", cmd_migrate, "apply pending schema migrations", db)
    user = sub.add_parser("user", help="users and API tokens").add_subparsers(dest="user_command", required=True)
    p = command("add", cmd_user_add, "create a user and print an API token", user)
    p.add_argument("callsign")
    p.add_argument("--email")
    p = command("token", cmd_user_token, "issue another API token for a user", user)
    p.add_argument("callsign")
    p.add_argument("--name", default="cli")
    cty_cmd = sub.add_parser("cty", help="the DXCC prefix table").add_subparsers(dest="cty_command", required=True)
    p = command("update", cmd_cty_update, "install a new cty.dat (validated first)", cty_cmd)
    p.add_argument("file", type=Path)
    add_commands(command)
    add_sync_commands(command)
    add_qsl_commands(command, sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="platformdirs")
    try:
        return int(args.func(args))
    except (HamsrvError, BaseExceptionGroup) as exc:
        error = _first_hamsrv_error(exc)
        if error is None:
            raise
        print(f"hamsrv: {error}", file=sys.stderr)
        return EXIT_USAGE if isinstance(error, ConfigError | DatabaseError) else 1
    except KeyboardInterrupt:
        return 130


def _first_hamsrv_error(exc: BaseException) -> HamsrvError | None:
    """Errors raised inside the root nursery arrive wrapped in exception groups."""
    if isinstance(exc, HamsrvError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _first_hamsrv_error(inner)
            if found is not None:
                return found
    return None


if __name__ == "__main__":
    sys.exit(main())
