"""The spot routes: GET /api/spots (history from the ring, filtered like the firehose), POST /api/spots."""

from __future__ import annotations

from itertools import islice

from quart import Blueprint, Response, request

from hamsrv.db.database import Row
from hamsrv.firehose.filters import parse_filter
from hamsrv.firehose.spot_input import spot_from_json
from hamsrv.http.common import app_state, authenticated, error, json_body, parse_int
from hamsrv.workers import SpotIntakeUnavailable

blueprint = Blueprint("spots", __name__)

SPOTS_SCAN = 20_000  # ring entries one /api/spots request may examine (the ring holds up to 200,000)


@blueprint.get("/api/spots")
async def list_spots() -> Response:
    """History from the ring, filtered like the firehose (band, mode, cont, dxcc, spotter_cont)."""
    state = app_state()
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
    # A `since` from another life of the ids (history lost, or a crash): say so.
    reset = b"" if ring.resumable(since, live) else b',"reset":true'
    body = (b'{"spots":[' + b",".join(e.json for e in picked)
            + b'],"last_id":%d,"scanned_to":%d%s}' % (live, scanned_to, reset))
    return Response(body, content_type="application/json")  # the ring's spots are encoded already


@blueprint.post("/api/spots")
@authenticated
async def post_spot(user: Row) -> Response:
    state = app_state()
    spot = spot_from_json(await json_body(), spotter=user["callsign"])
    try:
        encoded = await state.publish_spot(spot)
    except SpotIntakeUnavailable as exc:
        return error(503, str(exc))
    if encoded is None:
        return error(409, "duplicate spot (same call, spotter, frequency and minute within the hour)")
    return Response(encoded, status=201, content_type="application/json")
