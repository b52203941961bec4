"""The JSON API and the page, as a quart-trio app. Errors are JSON with a 4xx status naming the field."""

from __future__ import annotations

import base64
import logging
import re
import time
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from quart import Response, jsonify, request, send_from_directory
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from hamsrv.db import qsos
from hamsrv.db.database import Row
from hamsrv.db.errors import UniqueViolation
from hamsrv.errors import DatabaseError, InputError
from hamsrv.firehose.filters import parse_filter
from hamsrv.firehose.spot_input import spot_from_json
from hamsrv.http import bus, dns, imports, observability, propagation, qsl, settings, signin, syncs
from hamsrv.http.common import (
    ApiError,
    AppState,
    authenticated,
    error,
    json_body,
    parse_int,
    parse_time,
    reject_unknown_params,
)
from hamsrv.http.qso_input import qso_json, row_from_json
from hamsrv.model import normalize_band
from hamsrv.workers import SpotIntakeUnavailable

log = logging.getLogger(__name__)

SPOTS_SCAN = 20_000  # ring entries one /api/spots request may examine (the ring holds up to 200,000)


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


BODY_LEFT_UNREAD = (408, 413, 507)  # refused while the client may still be sending its body


def create_app(state: AppState) -> QuartTrio:
    app = QuartTrio(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = state.max_upload_bytes
    app.extensions["hamsrv"] = state
    app.register_blueprint(propagation.blueprint)
    app.register_blueprint(syncs.blueprint)
    app.register_blueprint(signin.blueprint)
    app.register_blueprint(dns.blueprint)
    app.register_blueprint(settings.blueprint)
    observability.install(app, state)
    import_figures = observability.ImportFigures(state)
    app.register_blueprint(qsl.blueprint)

    @app.errorhandler(ApiError)
    async def on_api_error(exc: ApiError) -> Response:
        response = error(exc.status, str(exc), exc.field)
        if exc.retry_after:
            response.headers["Retry-After"] = exc.retry_after
        if exc.status in BODY_LEFT_UNREAD:  # the rest of the body is never read: end the connection
            response.headers["Connection"] = "close"
        return response

    @app.errorhandler(InputError)
    async def on_input_error(exc: InputError) -> Response:
        return error(400, str(exc), exc.field)

    @app.errorhandler(DatabaseError)
    async def on_db_error(exc: DatabaseError) -> Response:
        log.warning("database error: %s", exc)
        return error(503, "the database is unavailable, try again shortly")

    @app.errorhandler(HTTPException)
    async def on_http_error(exc: HTTPException) -> Response:
        return error(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    async def on_unexpected(exc: Exception) -> Response:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error(500, "internal error (logged on the server)")

    @app.get("/")
    async def index() -> Any:
        return await send_from_directory(state.web_dir, "index.html")

    @app.get("/web/<path:name>")
    async def web_file(name: str) -> Any:
        return await send_from_directory(state.web_dir, name)

    @app.get("/healthz")
    async def healthz() -> Response:
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

    @app.get("/metrics")
    async def metrics() -> Response:
        await import_figures.refresh(state)
        return Response(state.metrics.render(), content_type="text/plain; version=0.0.4")

    # ---- logbook
    @app.get("/api/qsos")
    @authenticated
    async def list_qsos(user: Row) -> Response:
        reject_unknown_params(QSO_SEARCH_PARAMS)
        args = request.args
        limit = parse_int("limit", args.get("limit"), 100, 1, qsos.PAGE_MAX)
        rows = await qsos.search(state.db, user["id"], qso_search(args),
                                 before=decode_cursor(args["cursor"]) if "cursor" in args else None, limit=limit)
        next_cursor = encode_cursor(rows[-1]) if len(rows) == limit else None
        return jsonify({"qsos": [qso_json(r) for r in rows], "next": next_cursor})

    @app.post("/api/qsos")
    @authenticated
    async def create_qso(user: Row) -> Response:
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

    @app.get("/api/qsos/<int:qso_id>")
    @authenticated
    async def get_qso(user: Row, qso_id: int) -> Response:
        row = await qsos.get(state.db, user["id"], qso_id)
        if row is None:
            raise ApiError(404, f"no QSO {qso_id}")
        return jsonify(qso_json(row))

    @app.patch("/api/qsos/<int:qso_id>")
    @authenticated
    async def patch_qso(user: Row, qso_id: int) -> Response:
        patch = await json_body()
        current = await qsos.get(state.db, user["id"], qso_id)
        if current is None:
            raise ApiError(404, f"no QSO {qso_id}")
        row = row_from_json(patch, base=current)
        try:
            updated = await qsos.replace(state.db, user["id"], qso_id, row)
        except UniqueViolation:
            raise ApiError(409, "another QSO has the same call, band, mode and minute") from None
        if updated is None:
            raise ApiError(404, f"no QSO {qso_id}")
        return jsonify(qso_json(updated))

    @app.delete("/api/qsos/<int:qso_id>")
    @authenticated
    async def delete_qso(user: Row, qso_id: int) -> Response:
        if not await qsos.delete(state.db, user["id"], qso_id):
            raise ApiError(404, f"no QSO {qso_id}")
        return Response("", status=204)

    # ---- spots
    @app.get("/api/spots")
    async def list_spots() -> Response:
        """History from the ring, filtered like the firehose (band, mode, cont, dxcc, spotter_cont)."""
        args = request.args
        since = parse_int("since", args.get("since"), 0, 0, 2**62)
        limit = parse_int("limit", args.get("limit"), 100, 1, 1000)
        spot_filter = parse_filter({k: args.getlist(k) for k in args if k not in ("since", "limit")})
        ring, live = state.hub.ring, state.hub.announced_seq  # spots the firehose has sent, no later ones
        # At most SPOTS_SCAN ring entries per request, so a filter that matches nothing stays cheap;
        # `scanned_to` tells a client where to go on (`since=`) when the budget ran out.
        if "since" in args:  # oldest first from the cursor, as a client catching up wants them
            window = [e for e in ring.after(since, SPOTS_SCAN) if e.seq <= live]
            picked = list(islice((e for e in window if spot_filter.matches(e.spot)), limit))
            scanned_to = picked[-1].seq if len(picked) == limit else (window[-1].seq if window else since)
        else:  # the latest ones, oldest of them first
            newest = (e for e in islice(ring.newest_first(), SPOTS_SCAN) if e.seq <= live)
            picked = list(islice((e for e in newest if spot_filter.matches(e.spot)), limit))
            picked.reverse()
            scanned_to = live
        # A `since` beyond the last id comes from before a reset of the ids (history lost): say so.
        reset = b',"reset":true' if since > live else b""
        body = (b'{"spots":[' + b",".join(e.json for e in picked)
                + b'],"last_id":%d,"scanned_to":%d%s}' % (live, scanned_to, reset))
        return Response(body, content_type="application/json")  # the ring's spots are encoded already

    @app.post("/api/spots")
    @authenticated
    async def post_spot(user: Row) -> Response:
        spot = spot_from_json(await json_body(), spotter=user["callsign"])
        try:
            encoded = await state.publish_spot(spot)
        except SpotIntakeUnavailable as exc:
            return error(503, str(exc))
        if encoded is None:
            return error(409, "duplicate spot (same call, spotter, frequency and minute within the hour)")
        return Response(encoded, status=201, content_type="application/json")

    imports.register(app, state)
    bus.register(app, state)
    return app
