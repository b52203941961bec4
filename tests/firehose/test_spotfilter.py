"""DXSpider spot filter expressions (Spot.pm `$filterdef`, with and/or/not), on plain spots."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hamsrv.firehose.spotfilter import FilterError, parse_expression
from hamsrv.model import Spot

NOW = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)


def spot(freq: float = 14025.0, dx: str = "JA1XYZ", spotter: str = "G4ABC", comment: str = "",
         mode: str | None = "CW", **extra: str) -> Spot:
    s = Spot(spotter, freq, dx, comment, NOW, mode=mode, dxcc=339, cqz=25, spotter_dxcc=223, origin="GB7DJK")
    s.extra.update({"spotter_cqz": "14", "dx_ituz": "45", "spotter_ituz": "27", **extra})
    return s


@pytest.mark.parametrize(("text", "yes", "no"), [
    # the example: became "unknown mode" while the user got everything
    ("on hf/cw and not by_zone 14", spot(spotter="W1AW", **{"spotter_cqz": "5"}), spot()),
    ("on hf/cw and not by_zone 14", spot(spotter="W1AW", **{"spotter_cqz": "5"}), spot(mode="FT8")),
    ("call VP8,JA or info iota", spot(), spot(dx="K1ABC")),
    ("call VP8,JA or info iota", spot(dx="K1ABC", comment="EU-005 IOTA"), spot(dx="K1ABC")),
    ("not (on 20m or on 40m)", spot(freq=21025.0), spot(freq=7025.0)),
    ("by G4 and origin GB7", spot(), spot(spotter="W1AW")),
    ("call_dxcc 339 by_dxcc 223", spot(), Spot("W1AW", 14025.0, "JA1XYZ", "", NOW, dxcc=339, spotter_dxcc=291)),
    ("call_zone 25,26 and by_zone 14", spot(), spot(**{"spotter_cqz": "5"})),
    ("call_itu 45 and by_itu 27", spot(), spot(**{"dx_ituz": "46"})),
    ("call JA1X* and not call JA1XZ?", spot(), spot(dx="JA1XZZ")),
    ("on 14000/14030", spot(), spot(freq=14074.0)),
    ("ip 192.0.2", spot(spotter_ip="192.0.2.7"), spot(spotter_ip="198.51.100.1")),
    ("state CA or by_state NY", spot(dx_state="CA"), spot(dx_state="TX")),
])
def test_expressions(text, yes, no):
    """Filter::Cmd: `and`, `or`, `not` and brackets between Spot.pm filterdef fields
    (`['call', 'c', 1]`, `['info', 't', 3]`, `['by', 'c', 4]`, `['call_dxcc', 'nc', 5]`, `['by_zone', 'nz', 11]` ...)."""
    predicate = parse_expression(text)
    assert predicate(yes) and not predicate(no)


@pytest.mark.parametrize(("text", "message"), [
    ("on hf/cw and frob 14", "unknown filter word 'frob'"),
    ("on hf/cw and (call G", "ends too early"),
    ("on hf/cw)", "cannot understand ')'"),
    ("by_zone 41", "numbers from 1 to 40"),
    ("call_dxcc G", "ADIF numbers"),
    ("on hf/xyz", "unknown mode 'xyz'"),
    ("", "empty filter"),
])
def test_refused_clearly(text, message):
    with pytest.raises(FilterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_expression(text)


atoms = st.sampled_from(["on 20m", "on hf/cw", "call JA", "by G4", "info cq", "by_zone 14", "call_zone 25",
                         "origin GB7", "call_dxcc 339", "on 7000/7100"])
spots = st.builds(spot, freq=st.sampled_from([7025.0, 14025.0, 14074.0, 50100.0]),
                  dx=st.sampled_from(["JA1XYZ", "K1ABC"]), spotter=st.sampled_from(["G4ABC", "W1AW"]),
                  comment=st.sampled_from(["", "CQ dx"]), mode=st.sampled_from(["CW", "FT8", None]))


@settings(max_examples=300)
@given(atoms, atoms, atoms, spots)
def test_boolean_algebra(a, b, c, s):
    """`and` binds tighter than `or`; `not` and brackets as written; side by side means `and`."""
    pa, pb, pc = (parse_expression(x)(s) for x in (a, b, c))
    assert parse_expression(f"{a} or {b} and {c}")(s) == (pa or (pb and pc))
    assert parse_expression(f"({a} or {b}) and {c}")(s) == ((pa or pb) and pc)
    assert parse_expression(f"not {a} or not ( {b} )")(s) == ((not pa) or (not pb))
    assert parse_expression(f"{a} {b}")(s) == (pa and pb)


@settings(max_examples=300)
@given(st.text(max_size=80))
def test_parse_raises_only_filter_error(text):
    try:
        parse_expression(text)
    except FilterError as exc:
        assert str(exc)
