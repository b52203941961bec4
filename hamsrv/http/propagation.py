"""GET /api/propagation: hourly path MUF between two locators (or a callsign's country), from the
latest solar data."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

from quart import Blueprint, current_app, jsonify, request

from hamsrv import propagation
from hamsrv.cty import CtyTable
from hamsrv.http.common import ApiError, AppState, reject_unknown_params
from hamsrv.model import normalize_call
from hamsrv.propagation import SolarReading

blueprint = Blueprint("propagation", __name__)

STALE_AFTER = timedelta(hours=4)  # NOAA publishes hourly: four missed updates make the data stale


def _number(name: str, lo: float, hi: float) -> float | None:
    text = request.args.get(name)
    if text is None:
        return None
    try:
        value = float(text[:32])
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ApiError(400, f"{name} must be a number from {lo:g} to {hi:g}", name)
    return value


def _place(name: str, cty: CtyTable | None) -> tuple[str, float, float]:
    """A Maidenhead locator, or a callsign placed at its DXCC entity's centre (cty.dat)."""
    text = request.args.get(name)
    if not text:
        raise ApiError(400, f"{name} is required: a Maidenhead locator such as FN31 or JO62qm", name)
    try:
        lat, lon = propagation.locator_to_latlon(text)
        return text.strip().upper(), lat, lon
    except propagation.LocatorError as exc:
        call = normalize_call(text)
        entity = cty.lookup(call) if call and cty is not None else None
        if entity is None:
            raise ApiError(400, f"{exc}, nor a callsign of a known DXCC entity", name) from None
        return f"{call} ({entity.name})", entity.lat, entity.lon


@blueprint.get("/api/propagation")
async def get_propagation() -> Any:
    reject_unknown_params({"from", "to", "date", "path", "flux", "kp"})
    state: AppState = current_app.extensions["hamsrv"]
    src, lat1, lon1 = _place("from", state.cty)
    dst, lat2, lon2 = _place("to", state.cty)
    path = request.args.get("path", "short")
    if path not in ("short", "long"):
        raise ApiError(400, "path must be short or long", "path")
    try:
        day = date.fromisoformat(request.args["date"]) if "date" in request.args else datetime.now(UTC).date()
    except ValueError:
        raise ApiError(400, "date must be YYYY-MM-DD", "date") from None
    flux, kp = _number("flux", 50, 400), _number("kp", 0, 9)
    if flux is not None:
        inputs = SolarReading(flux, kp, None, "request")
    else:
        latest = await state.latest_solar()
        if latest is None:
            raise ApiError(503, "no solar data yet (the NOAA sync has not run); pass flux= to choose one")
        inputs = SolarReading(latest.flux, kp if kp is not None else latest.kp, latest.time, latest.source)
    stale = inputs.time is not None and datetime.now(UTC) - inputs.time > STALE_AFTER
    hours = propagation.forecast(inputs.flux, day, lat1, lon1, lat2, lon2, long_path=path == "long")
    angle = propagation.path_angle(lat1, lon1, lat2, lon2)
    if path == "long":
        angle = 2 * math.pi - angle
    return jsonify({
        "from": src, "to": dst, "path": path, "date": day.isoformat(),
        "distance_km": round(angle * propagation.EARTH_RADIUS_KM),
        "method": "MINIMUF 3.5 (QST, December 1982)",
        "inputs": {"flux": inputs.flux, "ssn": round(propagation.flux_to_ssn(inputs.flux), 1), "kp": inputs.kp,
                   "time": inputs.time.isoformat() if inputs.time else None, "source": inputs.source,
                   "stale": stale},
        "storm": inputs.kp is not None and inputs.kp >= propagation.STORM_KP,
        "hours": [{"hour": h.hour, "muf": h.muf, "fot": h.fot, "bands": list(h.open_bands),
                   "best_band": propagation.best_band(h.fot)} for h in hours],
    })
