"""Issue 14's shared checks in hamsrv.model: the spot frequency rule, Maidenhead locators, ADIF field names."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hamsrv.model import band_for_mhz, is_adif_field, spot_khz, valid_grid


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10**20, 10**20))
def test_spot_khz_is_in_a_band_or_none(value: float) -> None:
    khz = spot_khz(value)
    assert khz is None or (band_for_mhz(khz / 1000) is not None and khz == round(khz, 1))


@given(st.floats(1800, 2000) | st.floats(14000, 14350) | st.floats(144000, 148000))
def test_khz_in_a_band_is_kept_and_its_mhz_form_is_the_same(khz: float) -> None:
    assert spot_khz(khz) == round(khz, 1)
    if khz >= 14000:
        assert spot_khz(khz / 1000) == round(khz, 1)  # 14.195 and 14195 are one frequency


def test_spot_khz_examples() -> None:
    assert (spot_khz(14.195), spot_khz(7020), spot_khz(136.5), spot_khz(1), spot_khz(3000)) == (
        14195.0, 7020.0, 136.5, None, None)


@given(st.from_regex(r"[A-Ra-r]{2}([0-9]{2}([A-Xa-x]{2}([0-9]{2})?)?)?", fullmatch=True))
def test_locators_are_valid(grid: str) -> None:
    assert valid_grid(grid)


@given(st.text(max_size=10))
def test_valid_grid_never_raises_and_has_even_length(text: str) -> None:
    assert not valid_grid(text) or len(text) in (2, 4, 6, 8)


def test_unicode_that_upper_cases_to_a_locator_is_not_one() -> None:
    assert not valid_grid("\ufb00") and not valid_grid("\ufb0012")


def test_adif_field_names() -> None:
    assert all(is_adif_field(n) for n in ("CALL", "QSO_DATE", "APP_N1MM_ID", "USERDEF3", "MY_POTA_REF"))
    assert not any(is_adif_field(n) for n in ("START_AT", "OWNER", "ID", "APP_", "APP_X", "CREATED_AT"))
