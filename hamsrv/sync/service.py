"""The sync service of the root nursery: the scheduler with the syncs named in HAMSRV_SYNCS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from hamsrv.config import Config
from hamsrv.db.database import Database
from hamsrv.errors import ConfigError
from hamsrv.metrics import Registry
from hamsrv.sync.scheduler import Job, PgStateStore, Scheduler

JobFactory = Callable[[Config, Database], Job | None]  # None: not configured (e.g. no PowerDNS URL)


def factories() -> dict[str, JobFactory]:
    """Each sync by its name (`hamsrv sync NAME`), imported here so a sync's module loads on use."""
    return {}


def make_job(name: str, config: Config, db: Database) -> Job | None:
    known = factories()
    if name not in known:
        raise ConfigError(f"no sync named {name!r} (known: {', '.join(known)})")
    return known[name](config, db)


def configured_jobs(config: Config, db: Database) -> list[Job]:
    names = [n.strip() for n in config.syncs.split(",") if n.strip()]
    return [job for name in names if (job := make_job(name, config, db)) is not None]


async def serve_syncs(config: Config, db: Database, metrics: Registry,
                      task_status: trio.TaskStatus[Scheduler] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the configured syncs until cancelled; hands back the scheduler (per-user jobs join it)."""
    scheduler = Scheduler(PgStateStore(db), metrics=metrics, node=config.node_id)
    for job in configured_jobs(config, db):
        scheduler.add(job)
    await scheduler.run(task_status=task_status)


def health(scheduler: Scheduler) -> Callable[[], Any]:
    """For /healthz: each job's status and last error, as this node last saw them."""
    return lambda: {name: {"status": s.status, "failures": s.failures, "error": s.error if s.failures else None}
                    for name, s in scheduler.states.items()}
