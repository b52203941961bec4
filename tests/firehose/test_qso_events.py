"""QSO notifications turned into spots: bad payloads are dropped, never crash the listener."""

from __future__ import annotations

import json

from hamsrv.firehose.qso_events import spot_from_notify

GOOD = {"call": "ea8xyz", "station_callsign": "k1abc", "freq": 21.074, "start_at": "2026-12-03T12:30:00+00:00",
        "mode": "FT8", "rst_sent": "-12"}


def test_a_qso_becomes_a_spot() -> None:
    spot = spot_from_notify(json.dumps(GOOD))
    assert spot is not None and (spot.dx, spot.spotter, spot.freq, spot.mode) == ("EA8XYZ", "K1ABC", 21074.0, "FT8")


def test_non_finite_or_absurd_frequencies_are_dropped() -> None:
    """Issue 10: `round(inf)` raised OverflowError and took the QSO listener down."""
    for freq in ("Infinity", "NaN", "-5", 0, "1" + "0" * 400):
        assert spot_from_notify(json.dumps({**GOOD, "freq": freq})) is None, freq
    assert spot_from_notify(json.dumps(GOOD).replace("21.074", "1e400")) is None
