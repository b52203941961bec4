"""Enrichment and duplicate suppression, with the bundled cty.dat and real RBN lines."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hamsrv import cty
from hamsrv.firehose.cluster import DxSpot, parse_line
from hamsrv.firehose.enrich import Deduper, Enricher, make_prepare, mode_from_comment, mode_from_frequency
from hamsrv.firehose.ring import encode_spot, spot_to_dict
from hamsrv.model import Spot
from tests import testdata

DXCLUSTER = testdata.TESTDATA / "dxcluster"
NOW = datetime(2020, 7, 5, 23, 5, tzinfo=UTC)
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def spot(**kw: object) -> Spot:
    base: dict[str, object] = {"spotter": "G4XYZ", "freq": 14025.0, "dx": "JA1XYZ", "comment": "", "time": T0}
    return Spot(**{**base, **kw})  # type: ignore[arg-type]


def rbn_spots() -> list[Spot]:
    text = (DXCLUSTER / "rbn_telnet_lines_20200705.txt").read_text()
    events = [parse_line(line, NOW) for line in text.splitlines()]
    return [e.spot for e in events if isinstance(e, DxSpot)]


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return Enricher(cty.load_default())


def test_enrich_fills_band_entity_and_spotter(enricher):
    s = enricher.enrich(spot(comment="599 TKS(CW)"))
    assert (s.band, s.mode, s.dxcc, s.country, s.cont, s.cqz) == ("20m", "CW", 339, "Japan", "AS", 25)
    assert (s.spotter_dxcc, s.spotter_cont) == (223, "EU")


def test_enrich_skimmer_spot_keeps_rbn_mode_and_strips_suffix(enricher):
    km3t = enricher.enrich(rbn_spots()[0])  # KM3T-2-# spots CS3B (Madeira) on 14100.0
    assert (km3t.band, km3t.mode, km3t.snr, km3t.wpm) == ("20m", "CW", 24, 22)
    assert (km3t.dxcc, km3t.country, km3t.cont) == (256, "Madeira Islands", "AF")
    assert (km3t.spotter_dxcc, km3t.spotter_cont) == (291, "NA")


def test_enrich_keeps_values_a_source_supplied(enricher):
    s = enricher.enrich(spot(mode="RTTY", cqz=27, band="20m"))
    assert (s.mode, s.cqz, s.band) == ("RTTY", 27, "20m")


def test_enrich_unknown_calls_and_frequencies(enricher):
    s = enricher.enrich(spot(freq=1234.0, dx="G4ABC/MM", spotter="Q"))
    assert (s.band, s.mode, s.dxcc, s.country, s.spotter_dxcc) == (None, None, None, None, None)


@pytest.mark.parametrize(("comment", "mode"), [
    ("FT8 -12 dB", "FT8"), ("ft4 tnx", "FT4"), ("599 TKS(CW)QSL", "CW"), ("up 5 USB", "SSB"),
    ("lsb 59", "SSB"), ("RTTY contest", "RTTY"), ("bpsk31", "PSK31"), ("JS8Call", "JS8"),
    ("599 tnx", None), ("FM18 grid", None), ("QRV", None),
])
def test_mode_from_comment(comment, mode):
    assert mode_from_comment(comment) == mode


@pytest.mark.parametrize(("khz", "band", "mode"), [
    (14074.0, "20m", "FT8"), (14076.5, "20m", "FT8"), (7047.5, "40m", "FT4"), (7074.0, "40m", "FT8"),
    (14025.0, "20m", "CW"), (14085.0, "20m", "DIGI"), (14250.0, "20m", "SSB"), (3780.0, "80m", "SSB"),
    (10118.0, "30m", "CW"), (28263.9, "10m", "SSB"), (28190.5, "10m", "CW"), (145500.0, "2m", "FM"),
    (1234.0, None, None), (432100.0, "70cm", None),
])
def test_band_plan_heuristic(khz, band, mode):
    assert mode_from_frequency(khz, band) == mode


def test_dxspider_duplicate_rule():
    d = Deduper()
    first = spot(comment="599 tnx")
    assert not d.is_duplicate(first, 0.0)
    assert d.is_duplicate(replace(first, freq=14025.3), 10.0)  # same kHz after rounding
    assert d.is_duplicate(replace(first, comment="599 tnx"), 3599.0)
    assert not d.is_duplicate(first, 3600.0)  # an hour later it is news again
    assert not d.is_duplicate(replace(first, spotter="W1AW"), 10.0)
    assert not d.is_duplicate(replace(first, freq=14027.0), 10.0)
    assert not d.is_duplicate(replace(first, comment="QRZ?"), 10.0)
    assert not d.is_duplicate(replace(first, time=T0.replace(minute=1)), 10.0)
    # only the first 20 characters of the comment count
    long = spot(dx="VK2ABC", comment="a" * 20 + " first")
    assert not d.is_duplicate(long, 20.0)
    assert d.is_duplicate(replace(long, comment="a" * 20 + " second"), 21.0)


def test_skimmer_repeats_collapse_for_ten_minutes():
    d = Deduper()
    spots = rbn_spots()
    rw1m = [s for s in spots if s.dx == "RW1M"]  # 20 skimmer spots of RW1M on 7018.2-7018.4
    assert len(rw1m) == 20
    passed = [s for i, s in enumerate(rw1m) if not d.is_duplicate(s, float(i))]
    assert [s.spotter for s in passed] == ["LZ3CB-#"]
    assert not d.is_duplicate(replace(rw1m[0], spotter="ZZ9ZZ-#", freq=7025.0), 30.0)  # moved QRG
    assert not d.is_duplicate(replace(rw1m[1], spotter="ZZ8ZZ-#"), 601.0)  # window over: passes again
    assert d.is_duplicate(replace(rw1m[2], spotter="ZZ7ZZ-#"), 650.0)  # ... and opens a new window
    human = replace(rw1m[0], spotter="G4XYZ", skimmer=False)
    assert not d.is_duplicate(human, 31.0)  # a human spot is never collapsed with skimmer ones


def test_dedupe_memory_is_bounded():
    d = Deduper(max_keys=100)
    for i in range(1000):
        assert not d.is_duplicate(spot(dx=f"K{i}ABC", spotter=f"W{i}XX-#", skimmer=True), float(i))
    assert len(d) <= 200
    # and keys expire with time even below the cap
    small = Deduper(window=60.0, skimmer_window=60.0)
    for i in range(50):
        small.is_duplicate(spot(dx=f"K{i}ABC", skimmer=True), float(i))
    small.is_duplicate(spot(dx="K999ZZ"), 200.0)
    assert len(small) == 1


def test_dedupe_keeps_no_spot_alive():
    """Issue 10's soak: after the ring's window filled, RSS still grew ~430 bytes a spot for an hour, all of
    it Deduper keys (tracemalloc). Keys are hashes now: the spot's strings are freed with the spot."""
    import gc
    import tracemalloc

    d = Deduper()
    calls = [(f"K{i}ABCD/P", f"W{i}XYZ-#", f"CQ TEST {i} de somewhere far away") for i in range(20_000)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i, (dx, spotter, comment) in enumerate(calls):
        d.is_duplicate(spot(dx=dx, spotter=spotter, comment=comment), i / 100)
    per_key = (tracemalloc.get_traced_memory()[0] - before) / len(d)
    tracemalloc.stop()
    assert len(d) == 20_000 and per_key < 200, per_key
    assert d.is_duplicate(spot(dx=calls[7][0], spotter=calls[7][1], comment=calls[7][2]), 201.0)


def test_make_prepare_enriches_and_drops_duplicates():
    now = [100.0]
    prepare = make_prepare(cty.load_default(), lambda: now[0])
    spots = rbn_spots()
    heard_by: dict[tuple[str, int], set[str]] = {}
    for s in spots:
        heard_by.setdefault((s.dx, round(s.freq)), set()).add(s.spotter)
    out = [prepare(s) for s in spots]
    kept = [s for s in out if s is not None]
    # RBN.pm `$minqual = 2`: only the 5 calls two or more skimmers heard go out, each once, with Q:2
    assert len(kept) == sum(len(v) >= 2 for v in heard_by.values()) == 5
    assert all(s.band and s.dxcc and s.spotter_cont and s.comment.endswith("dB Q:2") for s in kept)
    assert prepare(replace(spots[0], extra={})) is None  # the very same spot again


@settings(max_examples=200)
@given(st.builds(Spot, spotter=st.text(max_size=12), freq=st.floats(0.1, 1e9), dx=st.text(max_size=12),
                 comment=st.text(max_size=40), time=st.datetimes(timezones=st.just(UTC)),
                 skimmer=st.booleans()))
def test_prepare_never_raises_on_any_valid_spot(s):
    prepare = make_prepare(cty.load_default(), lambda: 0.0)
    result = prepare(s)
    assert result is s or (result is None and (s.skimmer or s.spotter.endswith("-#")))  # held: one skimmer


def test_spots_are_sent_lean() -> None:
    """Issue 12: null, false, empty and default values are left out of the JSON (absent = unknown)."""
    bare = Spot("K1ABC", 14025.0, "JA1XYZ", "", datetime(2026, 12, 3, 12, 0, tzinfo=UTC))
    assert spot_to_dict(bare) == {"id": 0, "spotter": "K1ABC", "freq": 14025, "dx": "JA1XYZ",
                                  "time": "2026-12-03T12:00Z"}
    skimmer = Spot("PJ2A-#", 14025.0, "JA1XYZ", "CW 16 dB", datetime(2026, 12, 3, 12, 0, tzinfo=UTC),
                   band="20m", snr=16, skimmer=True, source="feed")
    assert spot_to_dict(skimmer) == {**spot_to_dict(bare), "spotter": "PJ2A-#", "comment": "CW 16 dB",
                                     "band": "20m", "snr": 16, "skimmer": True, "source": "feed"}
    assert encode_spot(bare) == (b'{"id":0,"spotter":"K1ABC","freq":14025,"dx":"JA1XYZ",'
                                 b'"time":"2026-12-03T12:00Z"}')


def test_lean_numbers_and_times() -> None:
    """No float noise, no `.0` on whole kHz, seconds only when the spot has them."""
    noisy = Spot("K1ABC", 14.0741 * 1000, "JA1XYZ", "", datetime(2026, 12, 3, 12, 0, 7, 250, tzinfo=UTC))
    assert spot_to_dict(noisy)["freq"] == 14074.1 and b'"freq":14074.1,' in encode_spot(noisy)
    assert spot_to_dict(noisy)["time"] == "2026-12-03T12:00:07Z"


@given(khz=st.floats(0.0, 1e9), when=st.datetimes(timezones=st.just(UTC)))
def test_lean_values_read_back(khz: float, when: datetime) -> None:
    """What the JSON says is the spot's frequency to the Hz and its time to the second."""
    encoded = json.loads(encode_spot(Spot("K1ABC", khz, "JA1XYZ", "", when)))
    assert abs(encoded["freq"] - khz) <= 0.0005 + khz * 1e-15
    back = datetime.fromisoformat(encoded["time"].replace("Z", "+00:00"))
    assert back == when.replace(microsecond=0)
