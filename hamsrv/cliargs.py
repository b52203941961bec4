"""What every `hamsrv` command shares: settings as flags, the configuration from them, and a database
for the command's one action. Its own module so that the command modules (hamsrv.cli and the ingest,
sync and QSL commands) all import it instead of each other."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from hamsrv import config as config_mod
from hamsrv.db.database import Database
from hamsrv.errors import ConfigError

DATABASE_SETTINGS = ("data_dir", "database_url")  # what every command but `serve` needs to know


def add_config_flags(parser: argparse.ArgumentParser, names: tuple[str, ...] | None = None,
                      create_flag: bool = True) -> None:
    """The settings as flags: all of them for `serve`, only where the database is for the others."""
    parser.add_argument("--config", type=Path, help="TOML file with settings (keys as the flags, '_' for '-')")
    for f in fields(config_mod.Config):
        if names is None or f.name in names:
            parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name,
                                metavar=f.name.split("_")[-1].upper(), help=f"{f.metadata['help']} [{f.metadata['env']}]")
    if names is not None and "database_url" in names and create_flag:
        parser.add_argument("--create", action="store_true",
                            help="create a new embedded database when the data dir has none")
    parser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="more log lines (-v: what the database does, -vv: debug)")


def config_from_args(args: argparse.Namespace) -> config_mod.Config:
    flags = {f.name: getattr(args, f.name, None) for f in fields(config_mod.Config)}
    config = config_mod.load(flags, file=args.config)
    if config.database_url is None and not getattr(args, "create", True):
        check_data_dir(config.data_dir)
    return config


def has_database(data_dir: Path) -> bool:
    return (data_dir / "pg" / "PG_VERSION").is_file()


def check_data_dir(data_dir: Path) -> None:
    """The server and the CLI read the data dir from the same settings (flag, HAMSRV_DATA_DIR, config
    file, else ./var of the current folder); a CLI command never creates a database by surprise."""
    if not has_database(data_dir):
        raise ConfigError(f"no hamsrv database in {data_dir.resolve()} (the data dir): give the server's with "
                          "--data-dir DIR or HAMSRV_DATA_DIR, or add --create to start a new one there")


async def with_db(cfg: config_mod.Config, action: Callable[[Database], Awaitable[Any]],
                   run_migrations: bool = True) -> Any:
    db = await Database.open(cfg.database_url, cfg.data_dir, pool_size=2, run_migrations=run_migrations)
    try:
        return await action(db)
    finally:
        await db.close()
