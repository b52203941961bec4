"""`hamsrv sync NAME --once`: run one sync now, under the same lock and bookkeeping as the server."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import trio

from hamsrv.cliargs import config_from_args
from hamsrv.config import Config
from hamsrv.db.database import Database
from hamsrv.errors import ConfigError

Command = Callable[..., argparse.ArgumentParser]
POOL_SIZE = 4  # the job's lock holds one connection; the job itself uses others


async def run_sync_once(config: Config, name: str, progress: Callable[[str], None]) -> bool:
    """Run sync `name` once; True when it succeeded. Its outcome is stored as a scheduled run's is."""
    from hamsrv.sync.scheduler import PgStateStore, Scheduler
    from hamsrv.sync.service import make_job

    db = await Database.open(config.database_url, config.data_dir, pool_size=POOL_SIZE)
    try:
        job = make_job(name, config, db)
        if job is None:
            raise ConfigError(f"sync {name} is not configured (see the README, Timed syncs)")
        state = await Scheduler(PgStateStore(db), node=config.node_id).run_once(job, progress=progress)
    finally:
        await db.close()
    when = f"; next scheduled run {state.next_run_at:%Y-%m-%d %H:%M} UTC" if state.next_run_at else ""
    progress(f"{state.status}{when}")
    return state.status == "ok"


def add_commands(command: Command) -> None:

    def cmd_sync(args: argparse.Namespace) -> int:
        if not args.once:
            raise ConfigError("only `hamsrv sync NAME --once` is supported: `hamsrv serve` runs syncs on schedule")
        started = time.monotonic()

        def progress(text: str) -> None:
            print(f"[{time.monotonic() - started:6.1f}s] {args.name}: {text}", file=sys.stderr, flush=True)

        return 0 if trio.run(run_sync_once, config_from_args(args), args.name, progress) else 1

    p = command("sync", cmd_sync, "run a timed sync now (fcc, noaa, pdns); progress on stderr")
    p.add_argument("name")
    p.add_argument("--once", action="store_true", help="run it once now and exit (non-zero on failure)")
