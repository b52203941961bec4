"""GET /api/sync: every timed sync with its health (per-user syncs only to their owner)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, current_app, jsonify, request

from hamsrv.http.common import AppState, bearer_token
from hamsrv.identity.tokens import user_for_token
from hamsrv.sync.scheduler import PgStateStore

blueprint = Blueprint("syncs", __name__)


@blueprint.get("/api/sync")
async def list_syncs() -> Any:
    state: AppState = current_app.extensions["hamsrv"]
    token = bearer_token(request.headers)
    user = await user_for_token(state.db, token) if token else None
    jobs = await PgStateStore(state.db).load_all(owner_id=user["id"] if user else None)
    return jsonify({"syncs": [job.as_json() for job in jobs]})
