"""QSO inserts reach the firehose: a trigger NOTIFYs `ham_qso_firehose`, this task LISTENs.

It listens through db/notify.py (its own connection, reconnected with backoff) and turns each
notification into a spot from the logging station.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import trio

from hamsrv.db.database import Database
from hamsrv.db.notify import listen_forever
from hamsrv.firehose.hub import Hub
from hamsrv.model import Spot, normalize_call, valid_khz

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
    def on_note(channel: str, payload: str) -> None:
        spot = spot_from_notify(payload)
        if spot is not None:
            hub.publish(spot)

    await listen_forever(db, [CHANNEL], on_note, what="QSO listener", retry_max=retry_max,
                         task_status=task_status)
