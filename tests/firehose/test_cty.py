"""cty.dat parsing and callsign lookup against the real AD1C files in shared/testdata."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hamsrv import cty
from hamsrv.errors import InputError
from tests import testdata

CTY_DATA = testdata.TESTDATA / "cty"
BIG_CTY = CTY_DATA / "bigcty_20240323_cty.dat"
REGULAR_CTY = CTY_DATA / "cty_regular_rhgndf.dat"


@pytest.fixture(scope="module")
def table() -> cty.CtyTable:
    return cty.load_default()


@pytest.mark.parametrize(("call", "name", "dxcc", "cont", "cqz", "ituz"), [
    ("W1AW", "United States", 291, "NA", 5, 8),
    ("G4ABC", "England", 223, "EU", 14, 27),
    ("JA1XYZ", "Japan", 339, "AS", 25, 45),
    ("VP8ABC", "Falkland Islands", 141, "SA", 13, 16),
    ("VE3ABC", "Canada", 1, "NA", 4, 4),  # the VE3 prefix carries a (4) zone override
    ("W6ABC", "United States", 291, "NA", 3, 6),  # W6(3)[6]
    ("IT9ABC", "Sicily", 248, "EU", 15, 28),  # WAE-only entity counts for Italy
    ("dl1abc", "Fed. Rep. of Germany", 230, "EU", 14, 28),
    # The Big CTY readme's own checks (exact-call entries):
    ("OR4TN", "Antarctica", 13, "SA", 38, 67),
    ("MR6TMS", "Scotland", 279, "EU", 14, 27),
    ("UI9XA", "European Russia", 54, "EU", 17, 20),  # UI9X(17)[20]: Komi
    ("ZS85SARL", "South Africa", 462, "AF", 38, 57),
    ("LW7DQQ/Y", "Argentina", 100, "SA", 13, 16),
])
def test_known_calls(table, call, name, dxcc, cont, cqz, ituz):
    entity = table.lookup(call)
    assert entity is not None
    assert (entity.name, entity.dxcc, entity.cont, entity.cqz, entity.ituz) == (name, dxcc, cont, cqz, ituz)


@pytest.mark.parametrize(("call", "name", "cqz"), [
    ("F/G4ABC", "France", 14),
    ("G4ABC/F", "France", 14),
    ("G4ABC/P", "England", 14),
    ("G4ABC/M", "England", 14),
    ("G4ABC/QRP", "England", 14),
    ("DL/G4ABC/P", "Fed. Rep. of Germany", 14),
    ("KH6/W1AW", "Hawaii", 31),
    ("W1AW/KH6", "Hawaii", 31),
    ("W1AW/7", "United States", 3),  # call area 7: same entity, CQ zone 3
    ("KH6ABC/4", "Hawaii", 31),  # KH4 would be Midway: a call-area digit never changes the entity
    ("DK9IP-#", "Fed. Rep. of Germany", 14),  # RBN skimmer
    ("KM3T-2-#", "United States", 5),
    ("DK0WCY-1", "Fed. Rep. of Germany", 14),
])
def test_portable_and_skimmer_forms(table, call, name, cqz):
    entity = table.lookup(call)
    assert entity is not None and (entity.name, entity.cqz) == (name, cqz)


@pytest.mark.parametrize("call", ["G4ABC/MM", "W1AW/AM", "", "/", "-#", "123", "Q"])
def test_no_entity(table, call):
    assert table.lookup(call) is None


def test_exact_call_override_beats_prefix(table):
    # `=KL4RL(4)` sits in the United States record: a KL call that is not Alaska, with CQ zone 4.
    entity = table.lookup("KL4RL")
    assert entity is not None and (entity.name, entity.cqz) == ("United States", 4)
    assert table.lookup("KL7ABC").name == "Alaska"  # type: ignore[union-attr]


def test_every_bundled_entity_has_a_dxcc_number(table):
    assert len(table) == 346
    assert all(e.dxcc is not None for e in table.entities)
    assert sum(e.wae_only for e in table.entities) == 6


def test_longitudes_are_east_positive(table):
    japan, usa = table.lookup("JA1XYZ"), table.lookup("W1AW")
    assert japan is not None and japan.lon == pytest.approx(138.38) and japan.utc_offset == 9.0
    assert usa is not None and usa.lon == pytest.approx(-91.87) and usa.utc_offset == -5.0


def test_regular_cty_parses_the_same_entities(table):
    regular = cty.read_cty(REGULAR_CTY)
    assert [e.name for e in regular.entities] == [e.name for e in table.entities]
    assert regular.lookup("G4ABC").dxcc == 223  # type: ignore[union-attr]


def test_install_replaces_atomically_and_load_prefers_it(tmp_path):
    data_dir = tmp_path / "var"
    installed = cty.install_cty(REGULAR_CTY, data_dir)
    assert (data_dir / "cty.dat").read_bytes() == REGULAR_CTY.read_bytes()
    assert len(installed) == 346
    assert cty.load(data_dir).lookup("W1AW").name == "United States"  # type: ignore[union-attr]
    assert cty.load(tmp_path / "empty") is cty.load_default()
    assert [p.name for p in data_dir.iterdir()] == ["cty.dat"]  # no temp file left behind


@pytest.mark.parametrize(("content", "message"), [
    (BIG_CTY.read_bytes()[:50_000], "entities"),  # truncated download
    (b"<html>503 Service Unavailable</html>", "expected 'Name: CQ"),
    (BIG_CTY.read_bytes().replace(b"  EU:   41.90", b"  EU:   north"), "bad number"),
    (BIG_CTY.read_bytes().replace(b"3A,=3A/4Z5KJ/LH;", b"3A,=3A/4Z5KJ/LH(x;"), "bad entry"),
])
def test_bad_file_raises_and_keeps_the_old_one(tmp_path, content, message):
    data_dir = tmp_path / "var"
    cty.install_cty(REGULAR_CTY, data_dir)
    bad = tmp_path / "new-cty.dat"
    bad.write_bytes(content)
    with pytest.raises(InputError, match=message):
        cty.install_cty(bad, data_dir)
    assert (data_dir / "cty.dat").read_bytes() == REGULAR_CTY.read_bytes()
    assert [p.name for p in data_dir.iterdir()] == ["cty.dat"]


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="cannot read cty.dat"):
        cty.install_cty(tmp_path / "nope.dat", tmp_path / "var")


@settings(max_examples=300)
@given(st.text())
def test_lookup_never_raises(call):
    result = cty.load_default().lookup(call)
    assert result is None or isinstance(result, cty.Entity)


@settings(max_examples=300)
@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-#", max_size=16))
def test_lookup_never_raises_on_call_like_text(call):
    result = cty.load_default().lookup(call)
    assert result is None or isinstance(result, cty.Entity)


REGULAR_TEXT = REGULAR_CTY.read_text()


@settings(max_examples=25, deadline=None)
@given(st.integers(0, len(REGULAR_TEXT)), st.integers(0, 200), st.text(max_size=5))
def test_damaged_file_parses_or_raises_input_error(start, length, insert):
    damaged = REGULAR_TEXT[:start] + insert + REGULAR_TEXT[start + length:]
    try:
        table = cty.parse_cty(damaged)
    except InputError:
        return
    assert len(table) >= cty.MIN_ENTITIES
