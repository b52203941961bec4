"""The `hamsrv` command. Every failure a user can cause ends in one clear line, never a traceback."""

from __future__ import annotations

import argparse
import functools
import logging
import sys
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import trio

from hamsrv.cliargs import DATABASE_SETTINGS, add_config_flags, config_from_args, has_database, with_db
from hamsrv.db.database import Database
from hamsrv.errors import ConfigError, DatabaseError, HamsrvError
from hamsrv.ingest.cli import add_commands
from hamsrv.sync.cli import add_commands as add_sync_commands
from hamsrv.sync.qsl_cli import add_commands as add_qsl_commands

EXIT_USAGE = 2  # bad configuration or unreachable database, as for argparse errors
def cmd_serve(args: argparse.Namespace) -> int:
    from hamsrv import app, workers

    config = config_from_args(args)
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

    config = config_from_args(args)
    new = config.database_url is None and not has_database(config.data_dir)
    trio.run(with_db, config, action, False)  # False: migrate() itself reports what it applied
    if new:
        print(f"created a new embedded database in {(config.data_dir / 'pg').resolve()}")
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    from hamsrv.identity.tokens import add_user, issue_token

    async def action(db: Database) -> None:
        user = await add_user(db, args.callsign, args.email)
        token = await issue_token(db, user["id"], "cli")
        print(f"user {user['callsign']} created; API token (shown once):\n{token}")

    trio.run(with_db, config_from_args(args), action)
    return 0


def cmd_user_token(args: argparse.Namespace) -> int:
    from hamsrv.identity.tokens import get_user, issue_token

    async def action(db: Database) -> None:
        user = await get_user(db, args.callsign)
        if user is None:
            raise HamsrvError(f"no user {args.callsign.upper()}")
        print(await issue_token(db, user["id"], args.name))

    trio.run(with_db, config_from_args(args), action)
    return 0


async def _user(db: Database, callsign: str) -> Any:
    from hamsrv.identity.tokens import get_user

    user = await get_user(db, callsign)
    if user is None:
        raise HamsrvError(f"no user {callsign.upper()}")
    return user


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "never"


def cmd_user_list(args: argparse.Namespace) -> int:
    from hamsrv.identity.tokens import list_users

    async def action(db: Database) -> None:
        users = await list_users(db)
        print(f"{'CALLSIGN':<12} {'QSOS':>9} {'TOKENS':>6}  {'CREATED':<16}  EMAIL")
        for u in users:
            print(f"{u['callsign']:<12} {u['qsos']:>9,} {u['tokens']:>6}  {_when(u['created_at']):<16}  {u['email'] or ''}")
        print(f"{len(users)} user{'s' if len(users) != 1 else ''}")

    trio.run(with_db, config_from_args(args), action)
    return 0


def cmd_user_delete(args: argparse.Namespace) -> int:
    from hamsrv.identity.tokens import delete_user

    async def action(db: Database) -> None:
        user = await _user(db, args.callsign)
        if not args.yes:
            raise HamsrvError(f"this deletes {user['callsign']} with every QSO, token and import; "
                              "add --yes to do it")
        await delete_user(db, user["callsign"])
        print(f"user {user['callsign']} deleted")

    trio.run(with_db, config_from_args(args), action)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    from hamsrv.identity.tokens import list_tokens

    async def action(db: Database) -> None:
        user = await _user(db, args.callsign)
        print(f"{'ID':>6}  {'NAME':<16} {'CREATED':<16}  LAST USED")
        for t in await list_tokens(db, user["id"]):
            print(f"{t['id']:>6}  {t['name']:<16} {_when(t['created_at']):<16}  {_when(t['last_used_at'])}")

    trio.run(with_db, config_from_args(args), action)
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from hamsrv.identity.tokens import revoke_token

    async def action(db: Database) -> None:
        user = await _user(db, args.callsign)
        if not await revoke_token(db, user["id"], args.id):
            raise HamsrvError(f"{user['callsign']} has no token {args.id} (see: hamsrv token list {user['callsign']})")
        print(f"token {args.id} of {user['callsign']} revoked")

    trio.run(with_db, config_from_args(args), action)
    return 0


def cmd_user_set(args: argparse.Namespace) -> int:
    """`hamsrv user role CALL admin|user` and `hamsrv user trust CALL none|low|medium|high`."""
    from hamsrv.identity.sessions import TRUST_NAMES, set_role, set_trust, trust_level

    async def action(db: Database) -> None:
        if args.user_command == "role":
            user = await set_role(db, args.callsign, args.value)
        else:
            user = await set_trust(db, args.callsign, trust_level(args.value))
        if user is None:
            raise HamsrvError(f"no user {args.callsign.upper()}")
        print(f"{user['callsign']}: roles {', '.join(['user', *user['roles']])}; "
              f"trust {TRUST_NAMES[user['trust_level']]}")

    trio.run(with_db, config_from_args(args), action)
    return 0


def cmd_cty_update(args: argparse.Namespace) -> int:
    from hamsrv.cty import install_cty

    cfg = config_from_args(args)
    table = install_cty(args.file, cfg.data_dir)
    print(f"cty.dat installed in {cfg.data_dir}: {len(table)} entities")
    return 0


def _version() -> str:
    try:
        return metadata.version("hamsrv")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hamsrv", description="One trio process for a whole ham platform.")
    parser.add_argument("--version", action="version", version=f"hamsrv {_version()}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log lines (-v: what the database does, -vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], int], help: str, parent: Any = sub,
                settings: tuple[str, ...] | None = DATABASE_SETTINGS, creates: bool = False) -> argparse.ArgumentParser:
        """`creates`: the command's job is to set the database up, so it may create one (and says so)."""
        p = parent.add_parser(name, help=help, description=help)
        add_config_flags(p, settings, create_flag=not creates)
        p.set_defaults(func=func)
        if creates:
            p.set_defaults(create=True)
        return p

    def group(name: str, help: str) -> Any:
        return sub.add_parser(name, help=help, description=help).add_subparsers(
            dest=f"{name}_command", required=True, metavar="COMMAND")

    command("serve", cmd_serve, "run the server (HTTP API, firehose, cluster port, jobs)", settings=None)
    db = group("db", "database maintenance")
    command("migrate", cmd_migrate, "apply pending schema migrations (creates the database if need be)", db,
            creates=True)
    user = group("user", "users")
    p = command("add", cmd_user_add, "create a user and print an API token", user)
    p.add_argument("callsign", help="the user's callsign")
    p.add_argument("--email", help="contact address (optional)")
    p = command("token", cmd_user_token, "issue another API token for a user (printed once)", user)
    p.add_argument("callsign", help="the user's callsign")
    p.add_argument("--name", default="cli", help="a label for the token (default: cli)")
    command("list", cmd_user_list, "list users with their QSO and token counts", user)
    p = command("delete", cmd_user_delete, "delete a user with every QSO, token and import", user)
    p.add_argument("callsign", help="the user's callsign")
    p.add_argument("--yes", action="store_true", help="really delete (without it, nothing happens)")
    token = group("token", "API tokens")
    p = command("list", cmd_token_list, "list a user's API tokens (ids, names, last use; never the token)", token)
    p.add_argument("callsign", help="the user's callsign")
    p = command("revoke", cmd_token_revoke, "revoke one API token of a user", token)
    p.add_argument("callsign", help="the user's callsign")
    p.add_argument("id", type=int, help="the token's id (from: hamsrv token list CALLSIGN)")
    cty_cmd = group("cty", "the DXCC prefix table")
    p = command("update", cmd_cty_update, "install a new cty.dat (validated first)", cty_cmd, settings=("data_dir",))
    p.add_argument("file", type=Path, help="the cty.dat file to install")
    p = command("role", cmd_user_set, "make a user an admin, or a plain user again", user)
    p.add_argument("callsign", help="the user's callsign")
    p.add_argument("value", choices=["admin", "user"], help="admin or user")
    p = command("trust", cmd_user_set, "set a user's trust level by hand", user)
    p.add_argument("callsign", help="the user's callsign")
    p.add_argument("value", choices=["none", "low", "medium", "high"], help="none, low, medium or high")
    add_commands(command)
    add_sync_commands(functools.partial(command, settings=None))  # a sync needs the authorities' URLs too
    add_qsl_commands(command, sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # quiet by default but for the server; -v shows INFO lines (the embedded database starting), -vv debug
    base = logging.INFO if args.command == "serve" else logging.WARNING
    level = logging.DEBUG if args.verbose >= 2 else min(base, logging.INFO) if args.verbose else base
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
