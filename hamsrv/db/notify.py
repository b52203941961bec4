"""PostgreSQL LISTEN/NOTIFY: one task that listens for good, and a helper that notifies.

NOTIFY reaches every process connected to the database (all workers, all nodes sharing it), which is
why the firehose takes QSO inserts this way and the user bus carries its events this way. LISTEN needs a
connection of its own for as long as it listens; it is reconnected with backoff when the database goes
away (what was notified meanwhile is lost: listeners must only carry events a client can do without).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import trio

from hamsrv.db.database import Database
from hamsrv.db.trio_pg import TrioConnection

log = logging.getLogger(__name__)
MAX_PAYLOAD = 7999  # bytes PostgreSQL takes in one NOTIFY payload (below 8000 by default)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


async def listen_forever(db: Database, channels: Sequence[str], on_note: Callable[[str, str], None], *,
                         what: str, retry_max: float = 30.0,
                         task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Call `on_note(channel, payload)` for every notification on `channels`, reconnecting for good;
    started() once the first LISTEN holds. `what` names the listener in log lines."""
    started = False
    delay = 0.5
    while True:
        try:
            conn = await TrioConnection.connect(db.pool.conninfo, autocommit=True)
        except Exception as exc:  # psycopg raises OperationalError; keep the task alive whatever it is
            log.warning("%s cannot connect: %s", what, _first_line(exc))
        else:
            try:
                for channel in channels:
                    await conn.execute(f"LISTEN {channel}")
                if not started:
                    task_status.started()
                    started = True
                delay = 0.5
                async for note in conn.notifies():
                    on_note(note.channel, note.payload)
            except Exception as exc:  # psycopg.OperationalError when the server goes away: reconnect
                log.warning("%s lost its connection: %s", what, _first_line(exc))
            finally:
                with trio.CancelScope(shield=True):
                    await conn.close()
        await trio.sleep(delay)
        delay = min(delay * 2, retry_max)


NOTIFY_SQL = "SELECT pg_notify(%s, %s)"  # with execute_on inside a transaction: sent at its commit


async def notify(db: Database, channel: str, payload: str) -> None:
    """NOTIFY now (its own short transaction); raises DatabaseError when the database is away."""
    await db.execute(NOTIFY_SQL, [channel, payload])
