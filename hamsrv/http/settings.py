"""A user's own settings: `GET /api/settings` shows them, `PATCH /api/settings` changes them.

`share_qsos` (off by default): a QSO you log that started within the last hour goes out on the public
firehose as a spot, with your callsign as the spotter.
"""

from __future__ import annotations

from quart import Blueprint, Response, current_app, jsonify

from hamsrv.db import accounts
from hamsrv.db.database import Row
from hamsrv.http.common import ApiError, AppState, authenticated, json_body

blueprint = Blueprint("settings", __name__)
SETTINGS = ("share_qsos",)


def _settings(user: Row) -> dict[str, object]:
    return {name: user[name] for name in SETTINGS}


@blueprint.get("/api/settings")
@authenticated
async def show_settings(user: Row) -> Response:
    return jsonify(_settings(user))


@blueprint.patch("/api/settings")
@authenticated
async def change_settings(user: Row) -> Response:
    body = await json_body()
    for key, value in body.items():
        if key not in SETTINGS:
            raise ApiError(400, f"unknown setting {key!r} (known: {', '.join(SETTINGS)})", key)
        if not isinstance(value, bool):
            raise ApiError(400, f"{key} must be true or false", key)
    state: AppState = current_app.extensions["hamsrv"]
    if "share_qsos" in body:
        user = await accounts.set_share_qsos(state.db, user["id"], body["share_qsos"]) or user
    return jsonify(_settings(user))
