"""A spot posted as JSON (POST /api/spots): validated into a Spot or an InputError naming the field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hamsrv.errors import InputError
from hamsrv.firehose.enrich import mode_from_comment, mode_from_frequency
from hamsrv.firehose.lines import MAX_COMMENT
from hamsrv.model import Spot, band_for_mhz, normalize_call, spot_khz


def spot_from_json(body: dict[str, Any], spotter: str, now: datetime | None = None) -> Spot:
    """`{"dx": "IP0TRC", "freq": 14025.0, "comment": "CQ"}`. The frequency is read as the cluster port
    reads a DX command (kHz, or MHz when that lands in a band: 14.195), and must be in an amateur band."""
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
    khz = spot_khz(freq) if isinstance(freq, int | float) else None
    if khz is None:
        raise InputError("freq must be a frequency in an amateur band, in kHz (14025) or MHz (14.025)",
                         field="freq")
    comment = body.get("comment", "")
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT or not comment.isprintable():
        raise InputError(f"comment must be printable text of at most {MAX_COMMENT} characters",
                         field="comment")
    unknown = set(body) - {"dx", "freq", "comment"}
    if unknown:
        raise InputError(f"unknown field {sorted(unknown)[0]!r}", field=sorted(unknown)[0])
    band = band_for_mhz(khz / 1000.0)
    return Spot(spotter=spotter, freq=khz, dx=dx, comment=comment.strip(),
                time=(now or datetime.now(UTC)).replace(second=0, microsecond=0), band=band,
                mode=mode_from_comment(comment) or mode_from_frequency(khz, band), source="http")
