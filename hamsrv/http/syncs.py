"""The syncs' routes: GET /api/sync (each sync's health), /api/solar (NOAA), /api/callbook/{call} (FCC)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, current_app, jsonify

from hamsrv.db import callbook
from hamsrv.db.database import json_value
from hamsrv.http.common import AppState, current_user, error
from hamsrv.model import normalize_call
from hamsrv.sync.scheduler import PgStateStore

blueprint = Blueprint("syncs", __name__)


@blueprint.get("/api/sync")
async def list_syncs() -> Any:
    state: AppState = current_app.extensions["hamsrv"]
    user = await current_user()  # signed in: also the caller's own per-user syncs
    jobs = await PgStateStore(state.db).load_all(owner_id=user["id"] if user else None)
    return jsonify({"syncs": [job.as_json() for job in jobs]})


@blueprint.get("/api/solar")
async def get_solar() -> Any:
    """The newest NOAA SWPC readings; `stale` once the sync has not got them for 4 hours."""
    from hamsrv.sync import noaa

    state: AppState = current_app.extensions["hamsrv"]
    body = await noaa.solar_json(state.db)
    if body is None:
        return error(503, "no solar data yet: the noaa sync has not run (see GET /api/sync)")
    return jsonify(body)


@blueprint.get("/api/callbook/<call>")
async def get_callbook(call: str) -> Any:
    """A US licence from the FCC ULS callbook (the email is never part of the answer)."""
    from hamsrv.sync import fcc

    state: AppState = current_app.extensions["hamsrv"]
    callsign = normalize_call(call)
    if callsign is None:
        return error(400, f"{call[:40]!r} is not a callsign", "call")
    row = await callbook.lookup(state.db, callsign)
    if row is None:
        return error(404, f"{callsign} is not in the FCC callbook")
    return jsonify({
        "callsign": row["callsign"], "name": row["name"],
        "class": row["operator_class"], "class_name": fcc.CLASSES.get(row["operator_class"] or ""),
        "status": row["license_status"], "status_name": fcc.STATUSES.get(row["license_status"] or ""),
        "granted": json_value(row["grant_date"]), "expires": json_value(row["expire_date"]),
        "city": row["city"], "state": row["state"], "source": "FCC ULS", "updated_at": json_value(row["updated_at"]),
    })
