"""A spot posted as JSON (POST /api/spots): validated into a Spot or an InputError naming the field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hamsrv.errors import InputError
from hamsrv.firehose.session import MAX_COMMENT
from hamsrv.model import Spot, normalize_call, valid_khz


def spot_from_json(body: dict[str, Any], spotter: str, now: datetime | None = None) -> Spot:
    """`{"dx": "IP0TRC", "freq": 14025.0, "comment": "CQ"}`; freq in kHz as on the cluster."""
    dx_text = body.get("dx", "")
    dx = normalize_call(dx_text) if isinstance(dx_text, str) else None
    if dx is None:
        raise InputError("dx must be a callsign", field="dx")
    freq = body.get("freq")
    if isinstance(freq, str):
        try:
            freq = float(freq[:40])
        except ValueError:
            freq = None
    khz = valid_khz(freq)
    if khz is None:
        raise InputError("freq must be the frequency in kHz (a positive number)", field="freq")
    comment = body.get("comment", "")
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT or not comment.isprintable():
        raise InputError(f"comment must be printable text of at most {MAX_COMMENT} characters",
                         field="comment")
    unknown = set(body) - {"dx", "freq", "comment"}
    if unknown:
        raise InputError(f"unknown field {sorted(unknown)[0]!r}", field=sorted(unknown)[0])
    return Spot(spotter=spotter, freq=round(khz, 1), dx=dx, comment=comment.strip(),
                time=(now or datetime.now(UTC)).replace(second=0, microsecond=0), source="http")
