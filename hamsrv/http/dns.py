"""Owner-scoped member DNS records: GET/POST /api/dns/records, PATCH/DELETE /api/dns/records/{id}.

Each change is stored, then its rrset is PATCHed into PowerDNS at once. When PowerDNS refuses the data
(422) the change is undone and the caller gets PowerDNS's message; when PowerDNS is down or misconfigured
the change stays stored (`"published": false` with the reason), the pdns sync shows the error and its
reconcile publishes the record once PowerDNS answers again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from quart import Blueprint, Response, current_app, jsonify

from hamsrv.db import dns_records
from hamsrv.db.database import Row, json_value
from hamsrv.db.errors import UniqueViolation
from hamsrv.http.common import ApiError, AppState, json_body, requires_trust
from hamsrv.sync import pdns

blueprint = Blueprint("dns", __name__)


def _setup(user: Row) -> tuple[AppState, pdns.MemberDns, str]:
    state: AppState = current_app.extensions["hamsrv"]
    dns: pdns.MemberDns | None = state.member_dns
    if dns is None:
        raise ApiError(503, "member DNS is not configured on this server (HAMSRV_DNS_ZONE, HAMSRV_PDNS_URL)")
    return state, dns, pdns.owner_label(user["callsign"], dns.zone)


def _json(row: Row, published: str | None = None) -> dict[str, Any]:
    body = {k: json_value(row[k]) for k in ("id", "name", "type", "content", "ttl", "created_at", "updated_at")}
    body["published"] = published is None
    if published is not None:
        body["error"] = f"stored, not yet in DNS: {published} (the pdns sync retries)"
    return body


async def _mine(state: AppState, user: Row) -> list[Row]:
    return await dns_records.owned(state.db, user["id"])


async def _publish_or_undo(state: AppState, dns: pdns.MemberDns, touched: set[tuple[str, str]],
                           undo: Callable[[], Awaitable[object]]) -> str | None:
    """Publish; on a 422 (PowerDNS refused the data) run `undo`, publish again and answer 422."""
    problem = await pdns.publish(state.db, dns, touched)
    if problem is not None and " 422 " in problem:
        await undo()
        await pdns.publish(state.db, dns, touched)
        raise ApiError(422, problem, "content")
    return problem


@blueprint.get("/api/dns/records")
@requires_trust(pdns.MIN_TRUST)
async def list_records(user: Row) -> Response:
    state, dns, label = _setup(user)
    rows = await _mine(state, user)
    return jsonify({"zone": dns.zone, "your_name": label, "quota": dns.quota, "records": [_json(r) for r in rows]})


@blueprint.post("/api/dns/records")
@requires_trust(pdns.MIN_TRUST)
async def add_record(user: Row) -> Response:
    state, dns, label = _setup(user)
    record = pdns.validate(await json_body(), label)
    mine = await _mine(state, user)
    if len(mine) >= dns.quota:
        raise ApiError(409, f"you have {len(mine)} records, the most one member may have ({dns.quota})")
    zid = await pdns.zone_id(state.db, dns)
    others = await dns_records.named(state.db, zid, record.name)
    pdns.check_conflicts(record, [pdns.as_record(o) for o in others])
    try:
        row = await dns_records.insert(state.db, zid, user["id"], record.name, record.type, record.content,
                                       record.ttl)
    except UniqueViolation:
        raise ApiError(409, f"{record.name} already has this {record.type} record", "content") from None
    assert row is not None
    problem = await _publish_or_undo(state, dns, {(record.name, record.type)},
                                     lambda: dns_records.delete(state.db, row["id"]))
    response = jsonify(_json(row, problem))
    response.status_code = 201 if problem is None else 202
    response.headers["Location"] = f"/api/dns/records/{row['id']}"
    return response


async def _owned(state: AppState, user: Row, record_id: int) -> Row:
    row = await dns_records.get_owned(state.db, user["id"], record_id)
    if row is None:
        raise ApiError(404, f"you have no DNS record {record_id}")
    return row


@blueprint.patch("/api/dns/records/<int:record_id>")
@requires_trust(pdns.MIN_TRUST)
async def change_record(user: Row, record_id: int) -> Response:
    state, dns, label = _setup(user)
    old = await _owned(state, user, record_id)
    record = pdns.validate(await json_body(), label, base=pdns.as_record(old))
    others = await dns_records.named(state.db, old["zone_id"], record.name, besides=record_id)
    pdns.check_conflicts(record, [pdns.as_record(o) for o in others])
    try:
        row = await dns_records.update(state.db, record_id, record.name, record.type, record.content, record.ttl)
    except UniqueViolation:
        raise ApiError(409, f"{record.name} already has this {record.type} record", "content") from None
    assert row is not None
    problem = await _publish_or_undo(
        state, dns, {(old["name"], old["type"]), (record.name, record.type)},
        lambda: dns_records.update(state.db, record_id, old["name"], old["type"], old["content"], old["ttl"],
                                   touch=False))
    response = jsonify(_json(row, problem))
    response.status_code = 200 if problem is None else 202
    return response


@blueprint.delete("/api/dns/records/<int:record_id>")
@requires_trust(pdns.MIN_TRUST)
async def delete_record(user: Row, record_id: int) -> Response:
    state, dns, _ = _setup(user)
    old = await _owned(state, user, record_id)
    await dns_records.delete(state.db, record_id)
    problem = await pdns.publish(state.db, dns, {(old["name"], old["type"])})
    if problem is not None:
        return jsonify({"deleted": record_id, "published": False,
                        "error": f"deleted here, still in DNS: {problem} (the pdns sync retries)"})
    return Response("", status=204)
