"""QSO inserts reach the firehose: a trigger NOTIFYs `ham_qso_firehose`, this task LISTENs.

It holds its own connection (LISTEN needs one for good), reconnects with backoff when the database goes
away, and turns each notification into a spot from the logging station.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import trio

from hamsrv.db.database import Database
from hamsrv.db.trio_pg import TrioConnection
from hamsrv.firehose.hub import Hub
from hamsrv.model import Spot, normalize_call, valid_khz

log = logging.getLogger(__name__)
CHANNEL = "ham_qso_firehose"


def spot_from_notify(payload: str) -> Spot | None:
    """None for payloads that cannot be a spot (no frequency, bad calls, not JSON)."""
    try:
        data: dict[str, Any] = json.loads(payload)
        khz = valid_khz(float(data["freq"]) * 1000)
        when = datetime.fromisoformat(str(data["start_at"])).astimezone(UTC)
    except (ValueError, KeyError, TypeError):
        return None
    dx = normalize_call(str(data.get("call") or ""))
    spotter = normalize_call(str(data.get("station_callsign") or ""))
    if dx is None or spotter is None or khz is None:
        return None
    parts = [str(data[k]) for k in ("mode", "rst_sent") if data.get(k)]
    comment = " ".join(["QSO", *parts])
    return Spot(spotter=spotter, freq=round(khz, 1), dx=dx, comment=comment,
                time=when.replace(second=0, microsecond=0), mode=data.get("mode"), source="qso")


async def listen_qsos(db: Database, hub: Hub, *, retry_max: float = 30.0,
                      task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    started = False
    delay = 0.5
    while True:
        try:
            conn = await TrioConnection.connect(db.pool.conninfo, autocommit=True)
        except Exception as exc:  # psycopg raises OperationalError; keep the task alive whatever it is
            log.warning("QSO listener cannot connect: %s", str(exc).splitlines()[0] if str(exc) else exc)
        else:
            try:
                await conn.execute(f"LISTEN {CHANNEL}")
                if not started:
                    task_status.started()
                    started = True
                delay = 0.5
                async for note in conn.notifies():
                    spot = spot_from_notify(note.payload)
                    if spot is not None:
                        hub.publish(spot)
            except Exception as exc:  # psycopg.OperationalError when the server goes away: reconnect
                log.warning("QSO listener lost its connection: %s", str(exc).splitlines()[0] if str(exc) else exc)
            finally:
                with trio.CancelScope(shield=True):
                    await conn.close()
        await trio.sleep(delay)
        delay = min(delay * 2, retry_max)
