"""A private PostgreSQL in the data dir (the `pgserver` wheel) for when no database URL is given."""

from __future__ import annotations

import logging
from pathlib import Path

import trio

from hamsrv.errors import DatabaseError

log = logging.getLogger(__name__)


async def start_embedded(data_dir: Path) -> str:
    """Start (or reuse) the embedded server in data_dir/pg; returns its connection URI.

    The server outlives a crash of hamsrv (the next start reuses it) and stops when the process exits
    normally, via pgserver's own exit handler.
    """
    import pgserver  # imported here: it is only needed when no database URL is configured

    pgdata = (data_dir / "pg").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    try:
        server = await trio.to_thread.run_sync(lambda: pgserver.get_server(pgdata, cleanup_mode="stop"))
    except Exception as exc:  # pgserver raises assorted errors (subprocess, OSError, assertion)
        raise DatabaseError(f"cannot start the embedded PostgreSQL in {pgdata}: {exc}") from None
    uri: str = server.get_uri()
    log.info("embedded PostgreSQL running in %s", pgdata)
    return uri
