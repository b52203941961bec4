"""MINIMUF 3.5 against DXSpider's Perl MINIMUF (the reference), plus its properties under hypothesis."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.peers.minimuf import PerlMinimuf
from bench.propagation import PATHS
from hamsrv.propagation import (
    HF_BANDS,
    LocatorError,
    flux_to_ssn,
    forecast,
    locator_to_latlon,
    minimuf,
    path_angle,
    ssn_to_flux,
)


@pytest.fixture(scope="module")
def perl(tmp_path_factory: pytest.TempPathFactory) -> PerlMinimuf:
    return PerlMinimuf(tmp_path_factory.mktemp("minimuf"))


def test_locators() -> None:
    assert locator_to_latlon("JJ00") == (0.5, 1.0)
    assert locator_to_latlon("fn31pr") == pytest.approx((41.729, -72.708), abs=0.01)  # ARRL HQ area
    assert locator_to_latlon("JO62QM") == pytest.approx((52.521, 13.375), abs=0.01)  # Berlin
    assert locator_to_latlon("AA00aa00") == pytest.approx((-90 + 1 / 480, -180 + 1 / 240))
    assert locator_to_latlon("RR99xx99") == pytest.approx((90 - 1 / 480, 180 - 1 / 240))
    for bad in ("", "F", "SS00", "FN3", "FN31Z", "FN31zz", "FN31aa0", "FN31aa0x", "12AB", "FN31aa00aa"):
        with pytest.raises(LocatorError):
            locator_to_latlon(bad)


def test_flux_fits() -> None:
    """MINIMUF's flux->SSN fit and ITU-R P.371's SSN->flux agree roughly where both hold (FACTS 10)."""
    assert flux_to_ssn(60) == 0
    assert ssn_to_flux(100) == pytest.approx(145.4, abs=0.1)  # P.371 worked value: R12 = 100 <-> 145.4
    for flux in (80, 120, 150, 200):
        assert abs(ssn_to_flux(flux_to_ssn(flux)) - flux) < 0.2 * flux


def test_ten_real_paths_match_dxspider(perl: PerlMinimuf) -> None:
    cases = []
    for a, b, _name in PATHS:
        lat1, lon1 = locator_to_latlon(a)
        lat2, lon2 = locator_to_latlon(b)
        for hour in range(24):
            cases.append((140.0, 12, 3, float(hour), lat1, lon1, lat2, lon2))
    ours = [minimuf(*c) for c in cases]
    assert ours == pytest.approx(both_ways(perl, cases), rel=1e-9)


def both_ways(perl: PerlMinimuf, cases: list) -> list[float]:
    """DXSpider walks from one end; hamsrv takes the lower of the walks from either end."""
    there = perl(cases)
    back = perl([(f, m, d, h, a2, o2, a1, o1) for f, m, d, h, a1, o1, a2, o2 in cases])
    return [min(x, y) for x, y in zip(there, back, strict=True)]


ends = st.tuples(st.floats(-80, 80), st.floats(-179.9, 179.9))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(65, 300), st.integers(1, 12), st.integers(1, 28), st.integers(0, 23), ends, ends),
                min_size=1, max_size=20))
def test_any_path_matches_dxspider(perl: PerlMinimuf, cases: list) -> None:
    flat = [(f, m, d, float(h), a[0], a[1], b[0], b[1]) for f, m, d, h, a, b in cases
            if 0.02 < path_angle(a[0], a[1], b[0], b[1]) < 3.1]  # the Perl divides by zero at 0 and pi
    if flat:
        assert [minimuf(*c) for c in flat] == pytest.approx(both_ways(perl, flat), rel=1e-9)


@given(st.floats(65, 300), st.integers(1, 12), st.integers(1, 28), st.integers(0, 23), ends, ends, st.booleans())
def test_symmetric_and_bounded(flux: float, month: int, day: int, hour: int, a: tuple, b: tuple, lp: bool) -> None:
    there = minimuf(flux, month, day, hour, *a, *b, long_path=lp)
    back = minimuf(flux, month, day, hour, *b, *a, long_path=lp)
    assert there == back
    assert 1.0 < there < 100.0


@given(st.floats(65, 250), st.integers(1, 12), st.integers(0, 23), ends, ends)
def test_more_sunspots_higher_muf(flux: float, month: int, hour: int, a: tuple, b: tuple) -> None:
    assert minimuf(flux + 40, month, 15, hour, *a, *b) > minimuf(flux, month, 15, hour, *a, *b)


def test_day_night_difference_mid_latitude() -> None:
    lat1, lon1 = locator_to_latlon("JN58")  # Munich
    lat2, lon2 = locator_to_latlon("IO91")  # London
    hours = forecast(150, date(2026, 6, 21), lat1, lon1, lat2, lon2)
    noon, night = hours[12].muf, hours[2].muf
    assert noon > 1.3 * night
    assert len(hours[12].open_bands) > len(hours[2].open_bands)
    for h in hours:  # open bands are exactly those starting below the MUF
        assert all(lo < h.muf for name, lo, _ in HF_BANDS if name in h.open_bands)
        assert all(lo >= h.muf for name, lo, _ in HF_BANDS if name not in h.open_bands)


def test_long_path_differs_and_any_pair_works() -> None:
    a, b = locator_to_latlon("FN31"), locator_to_latlon("PM95")
    short = forecast(150, date(2026, 3, 1), *a, *b)
    long = forecast(150, date(2026, 3, 1), *a, *b, long_path=True)
    assert [h.muf for h in short] != [h.muf for h in long]
    same = forecast(150, date(2026, 3, 1), *a, *a)  # same square, and the antipodes: no crash
    anti = forecast(150, date(2026, 3, 1), 10.0, 20.0, -10.0, -160.0)
    assert len(same) == len(anti) == 24
