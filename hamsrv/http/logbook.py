"""The logbook routes: GET/POST /api/qsos, GET/PATCH/DELETE /api/qsos/{id}, each on the caller's own QSOs."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta
from typing import Any

from quart import Blueprint, Response, jsonify, request

from hamsrv.db import qsos
from hamsrv.db.database import Row
from hamsrv.db.errors import UniqueViolation
from hamsrv.http.common import (
    ApiError,
    app_state,
    authenticated,
    error,
    json_body,
    parse_int,
    parse_time,
    reject_unknown_params,
)
from hamsrv.http.qso_input import qso_json, row_from_json
from hamsrv.model import normalize_band

blueprint = Blueprint("logbook", __name__)

QSO_SEARCH_PARAMS = {"call", "band", "mode", "dxcc", "grid", "confirmed", "from", "to", "limit", "cursor",
                     *qsos.QSL_COLUMNS}
_CALL_PATTERN = re.compile(r"[A-Z0-9/*?]{1,32}")
_GRID_PREFIX = re.compile(r"[A-R]{2}(?:[0-9]{2}(?:[A-X]{2}(?:[0-9]{2})?)?)?|[A-R]")
_YES_NO = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def qso_search(args: Any) -> qsos.Search:
    """The filters of GET /api/qsos; 400 naming the parameter for a value that cannot be one."""
    call = args.get("call", "").strip().upper() or None
    if call is not None and not _CALL_PATTERN.fullmatch(call):
        raise ApiError(400, "call must be a callsign or a pattern with * and ? (like DL1* or W?AW)", "call")
    band = args.get("band")
    if band is not None and normalize_band(band) is None:
        raise ApiError(400, f"{band!r} is not an ADIF band", "band")
    grid = args.get("grid", "").strip().upper() or None
    if grid is not None and not _GRID_PREFIX.fullmatch(grid):
        raise ApiError(400, "grid must be a Maidenhead locator or its start (like FN or FN31)", "grid")
    qsl = []
    for column in qsos.QSL_COLUMNS:
        if column in args:
            value = args[column].strip().upper()
            if len(value) != 1 or value not in "YNRQIV":
                raise ApiError(400, f"{column} must be one ADIF status letter (Y, N, R, Q, I, V)", column)
            qsl.append((column, value))
    confirmed = None
    if "confirmed" in args:
        confirmed = _YES_NO.get(args["confirmed"].strip().lower())
        if confirmed is None:
            raise ApiError(400, "confirmed must be true or false", "confirmed")
    until = parse_time("to", args.get("to"))
    if until is not None and _is_date(args["to"]):
        until += timedelta(days=1)  # a date means up to the end of that day
    return qsos.Search(
        call=call, band=normalize_band(band) if band else None, mode=args.get("mode", "").strip().upper() or None,
        dxcc=parse_int("dxcc", args["dxcc"], 0, 0, 9999) if "dxcc" in args else None, grid=grid,
        qsl=tuple(qsl), confirmed=confirmed, since=parse_time("from", args.get("from")), until=until)


def _is_date(text: str) -> bool:
    return len(text.strip()) == 10 and "T" not in text.upper()


def encode_cursor(row: Row) -> str:
    return base64.urlsafe_b64encode(f"{row['start_at'].isoformat()}|{row['id']}".encode()).decode()


def decode_cursor(text: str) -> tuple[datetime, int]:
    try:
        when, _, ident = base64.urlsafe_b64decode(text.encode()).decode().partition("|")
        return datetime.fromisoformat(when), int(ident)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "cursor is not one this server issued", "cursor") from None


@blueprint.get("/api/qsos")
@authenticated
async def list_qsos(user: Row) -> Response:
    state = app_state()
    reject_unknown_params(QSO_SEARCH_PARAMS)
    args = request.args
    limit = parse_int("limit", args.get("limit"), 100, 1, qsos.PAGE_MAX)
    rows = await qsos.search(state.db, user["id"], qso_search(args),
                             before=decode_cursor(args["cursor"]) if "cursor" in args else None, limit=limit)
    next_cursor = encode_cursor(rows[-1]) if len(rows) == limit else None
    return jsonify({"qsos": [qso_json(r) for r in rows], "next": next_cursor})


@blueprint.post("/api/qsos")
@authenticated
async def create_qso(user: Row) -> Response:
    state = app_state()
    row = row_from_json(await json_body())
    created = await qsos.insert(state.db, user["id"], row)
    if created is None:
        existing = await qsos.find_duplicate(state.db, user["id"], row)
        return error(409, "this QSO is logged already (same call, band, mode and minute)",
                     id=existing["id"] if existing else None)
    response = jsonify(qso_json(created))
    response.status_code = 201
    response.headers["Location"] = f"/api/qsos/{created['id']}"
    return response


@blueprint.get("/api/qsos/<int:qso_id>")
@authenticated
async def get_qso(user: Row, qso_id: int) -> Response:
    return jsonify(qso_json(await _own_qso(user, qso_id)))


async def _own_qso(user: Row, qso_id: int) -> Row:
    """The user's QSO, or 404 (another user's QSO is not theirs to see either)."""
    row = await qsos.get(app_state().db, user["id"], qso_id)
    if row is None:
        raise ApiError(404, f"no QSO {qso_id}")
    return row


@blueprint.patch("/api/qsos/<int:qso_id>")
@authenticated
async def patch_qso(user: Row, qso_id: int) -> Response:
    patch = await json_body()
    row = row_from_json(patch, base=await _own_qso(user, qso_id))
    try:
        updated = await qsos.replace(app_state().db, user["id"], qso_id, row)
    except UniqueViolation:
        raise ApiError(409, "another QSO has the same call, band, mode and minute") from None
    if updated is None:
        raise ApiError(404, f"no QSO {qso_id}")
    return jsonify(qso_json(updated))


@blueprint.delete("/api/qsos/<int:qso_id>")
@authenticated
async def delete_qso(user: Row, qso_id: int) -> Response:
    state = app_state()
    if not await qsos.delete(state.db, user["id"], qso_id):
        raise ApiError(404, f"no QSO {qso_id}")
    return Response("", status=204)
