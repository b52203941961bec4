"""The page (/ and /web/...) and the health check (/healthz)."""

from __future__ import annotations

import time
from typing import Any

from quart import Blueprint, Response, jsonify, send_from_directory

from hamsrv.http.common import app_state

blueprint = Blueprint("site", __name__)


@blueprint.get("/")
async def index() -> Any:
    state = app_state()
    return await send_from_directory(state.web_dir, "index.html")


@blueprint.get("/web/<path:name>")
async def web_file(name: str) -> Any:
    state = app_state()
    return await send_from_directory(state.web_dir, name)


@blueprint.get("/healthz")
async def healthz() -> Response:
    state = app_state()
    db_ok = await state.db.ping()
    body: dict[str, Any] = {
        "status": "ok" if db_ok else "degraded",
        "database": "ok" if db_ok else "down",
        "uptime": round(time.monotonic() - state.started, 3),
    }
    for name, read in state.health_extras.items():
        body[name] = read()
    response = jsonify(body)
    response.status_code = 200 if db_ok else 503
    return response
