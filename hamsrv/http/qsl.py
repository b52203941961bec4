"""QSL routes: LoTW/eQSL logins (stored sealed, never returned) and the sync's health per user."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, current_app, jsonify, request

from hamsrv.db.database import Row
from hamsrv.http.common import ApiError, AppState, authenticated, json_body, parse_int, reject_unknown_params
from hamsrv.model import without_control
from hamsrv.sync.qsl import QslService
from hamsrv.sync.qsl_store import SERVICES, Login, delete_login, save_login

blueprint = Blueprint("qsl", __name__)

MAX_USERNAME = 64
MAX_PASSWORD = 256


def _service() -> QslService:
    state: AppState = current_app.extensions["hamsrv"]
    if state.qsl is None:
        raise ApiError(503, "QSL sync is not running on this server")
    return state.qsl  # type: ignore[no-any-return]


def _known(service: str) -> str:
    if service not in SERVICES:
        raise ApiError(404, f"unknown QSL service {service!r} (known: {', '.join(SERVICES)})")
    return service


def _text(body: dict[str, Any], name: str, limit: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, f"{name} is required (a non-empty string)", name)
    if len(value) > limit:
        raise ApiError(400, f"{name} is longer than {limit} characters", name)
    if without_control(value) != value:
        raise ApiError(400, f"{name} contains control characters", name)
    return value


@blueprint.put("/api/qsl/credentials/<service>")
@authenticated
async def put_credentials(user: Row, service: str) -> Response:
    """Store the login; 204 and nothing else, so the password never travels back."""
    qsl, service = _service(), _known(service)
    body = await json_body()
    for name in body:
        if name not in ("username", "password"):
            raise ApiError(400, f"unknown field {name!r} (known: username, password)", name)
    login = Login(_text(body, "username", MAX_USERNAME).strip(), _text(body, "password", MAX_PASSWORD))
    await save_login(qsl.db, qsl.vault, user, service, login)
    qsl.login_saved(user, service)
    return Response("", status=204)


@blueprint.delete("/api/qsl/credentials/<service>")
@authenticated
async def delete_credentials(user: Row, service: str) -> Response:
    qsl, service = _service(), _known(service)
    if not await delete_login(qsl.db, user, service):
        raise ApiError(404, f"no {service} login is stored")
    qsl.login_removed(user, service)
    return Response("", status=204)


@blueprint.get("/api/qsl/status")
@authenticated
async def get_status(user: Row) -> Response:
    """Each service's health in words (last success, last error, counts) and the unseen notices."""
    reject_unknown_params(set())
    return jsonify(await _service().status(user))


@blueprint.get("/api/qsl/unmatched")
@authenticated
async def get_unmatched(user: Row) -> Response:
    """Confirmations no QSO of the log fits (yet), newest QSO first."""
    reject_unknown_params({"service", "limit"})
    service = request.args.get("service")
    if service is not None and service not in SERVICES:
        raise ApiError(400, f"service must be one of {', '.join(SERVICES)}", "service")
    limit = parse_int("limit", request.args.get("limit"), 100, 1, 1000)
    return jsonify({"unmatched": await _service().unmatched(user, service, limit)})


@blueprint.post("/api/qsl/notifications/seen")
@authenticated
async def post_seen(user: Row) -> Response:
    """The user has seen the notices: they leave GET /api/qsl/status."""
    return jsonify({"seen": await _service().mark_seen(user)})
