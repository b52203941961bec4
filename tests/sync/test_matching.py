"""Matching confirmations to the log by LoTW's rule: call (portable forms included), band, mode group,
start within 30 minutes; each QSO takes one confirmation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hamsrv.ingest.normalize import Reject
from hamsrv.sync.confirmations import (
    WINDOW,
    Confirmation,
    LoggedQso,
    confirmation_from_fields,
    match,
    mode_group,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def conf(call: str = "DL1ABC", at: datetime = T0, band: str | None = "20M", mode: str = "SSB",
         freq: str | None = None, **extra: str) -> Confirmation:
    fields = {"CALL": call, "QSO_DATE": at.strftime("%Y%m%d"), "TIME_ON": at.strftime("%H%M%S"),
              "MODE": mode, "QSL_RCVD": "Y", "QSLRDATE": "20240502", **extra}
    if band:
        fields["BAND"] = band
    if freq:
        fields["FREQ"] = freq
    made = confirmation_from_fields("lotw", fields, date(2024, 5, 3))
    assert not isinstance(made, Reject), made
    return made


def qso(ident: int, call: str = "DL1ABC", at: datetime = T0, band: str | None = "20m", mode: str | None = "SSB",
        freq: float | None = None, submode: str | None = None) -> LoggedQso:
    return LoggedQso(ident, call, at, band, freq, mode, submode)


def test_29_minutes_apart_match_31_do_not_and_30_is_the_edge() -> None:
    for minutes, expected in ((29, True), (30, True), (31, False), (-29, True), (-31, False)):
        got = match([conf(at=T0 + timedelta(minutes=minutes))], [qso(1)])
        assert (got == {0: 1}) is expected, minutes
    assert match([conf(at=T0 + timedelta(minutes=30, seconds=1))], [qso(1)]) == {}


def test_portable_and_prefix_forms_must_be_the_same_as_at_lotw() -> None:
    assert match([conf(call="W1AW/P")], [qso(1, call="W1AW/P")]) == {0: 0 + 1}
    assert match([conf(call="W1AW/P")], [qso(1, call="W1AW")]) == {}
    assert match([conf(call="W1AW")], [qso(1, call="W1AW/QRP")]) == {}
    assert match([conf(call="DL/W1AW")], [qso(1, call="W1AW")]) == {}
    assert match([conf(call="dl/w1aw")], [qso(1, call="W1AW"), qso(2, call="DL/W1AW")]) == {0: 2}
    # the portable and the home station worked on one day are two different confirmations
    assert match([conf(call="W1AW/P"), conf(call="W1AW")],
                 [qso(1, call="W1AW"), qso(2, call="W1AW/P")]) == {0: 2, 1: 1}


def test_mode_groups_as_lotw_defines_them() -> None:
    assert mode_group("USB") == mode_group("LSB") == mode_group("SSB") == mode_group("FM") == "PHONE"
    assert mode_group("FT8") == mode_group("FT4") == mode_group("RTTY") == mode_group("JT65") == "DATA"
    assert mode_group("CW") == "CW" and mode_group("SSTV") == "IMAGE"
    assert match([conf(mode="SSB")], [qso(1, mode="SSB", submode="USB")]) == {0: 1}
    assert match([conf(mode="USB")], [qso(1, mode="USB")]) == {0: 1}  # a submode logged as the mode
    assert match([conf(mode="PHONE")], [qso(1, mode="AM")]) == {0: 1}
    assert match([conf(mode="SSB")], [qso(1, mode="CW")]) == {}
    assert match([conf(mode="FT8", APP_LoTW_MODEGROUP="DATA")], [qso(1, mode="MFSK", submode="FT4")]) == {0: 1}
    assert match([conf(mode="FT8")], [qso(1, mode="RTTY")]) == {0: 1}
    assert match([conf(mode="FT8")], [qso(1, mode="SSB")]) == {}
    # among DATA QSOs with the same station, the very same mode wins even when further in time
    both = [qso(1, mode="MFSK", submode="FT4"), qso(2, at=T0 + timedelta(minutes=10), mode="FT8")]
    assert match([conf(mode="FT8")], both) == {0: 2}


def test_band_against_frequency() -> None:
    assert match([conf(band="20M")], [qso(1, band=None, freq=14.074)]) == {0: 1}
    assert match([conf(band=None, freq="7.074")], [qso(1, band="40m")]) == {0: 1}
    assert match([conf(band="20M")], [qso(1, band=None, freq=7.074)]) == {}
    assert match([conf(band="20M")], [qso(1, band="40m", freq=None)]) == {}
    assert match([conf(band="20M")], [qso(1, band=None, freq=None)]) == {}  # nothing to compare: no match


def test_two_qsos_with_the_same_station_on_one_day_each_get_their_own() -> None:
    morning, evening = T0.replace(hour=9), T0.replace(hour=18)
    qsos = [qso(1, at=morning), qso(2, at=evening)]
    assert match([conf(at=evening), conf(at=morning)], qsos) == {0: 2, 1: 1}
    # 20 minutes apart: each confirmation is within 30 minutes of both QSOs, the nearest wins
    close = [qso(1, at=T0), qso(2, at=T0 + timedelta(minutes=20))]
    assert match([conf(at=T0 + timedelta(minutes=20)), conf(at=T0)], close) == {0: 2, 1: 1}
    assert match([conf(at=T0 + timedelta(minutes=5))], close) == {0: 1}
    # one QSO, the same confirmation twice (LoTW repeats the newest): only one takes it
    assert len(match([conf(), conf()], [qso(1)])) == 1


CALLS = st.sampled_from(["DL1ABC", "W1AW", "W1AW/P", "VP2E/W1AW", "JA1XYZ"])
BANDS = st.sampled_from(["20m", "40m", "2m"])
MODES = st.sampled_from(["SSB", "CW", "FT8", "RTTY", "FM"])
MINUTES = st.integers(-120, 120)


@st.composite
def logs(draw: st.DrawFn) -> tuple[list[Confirmation], list[LoggedQso]]:
    qsos = [qso(i + 1, call=draw(CALLS), at=T0 + timedelta(minutes=draw(MINUTES)), band=draw(BANDS),
                mode=draw(MODES)) for i in range(draw(st.integers(0, 12)))]
    confs = [conf(call=draw(CALLS), at=T0 + timedelta(minutes=draw(MINUTES)), band=draw(BANDS).upper(),
                  mode=draw(MODES)) for _ in range(draw(st.integers(0, 12)))]
    return confs, qsos


@given(logs())
def test_every_match_obeys_the_rule_no_qso_is_used_twice_and_none_is_left_over(
        case: tuple[list[Confirmation], list[LoggedQso]]) -> None:
    confs, qsos = case
    got = match(confs, qsos)
    by_id = {q.id: q for q in qsos}
    assert len(set(got.values())) == len(got)

    def fits(c: Confirmation, q: LoggedQso) -> bool:
        return (c.call == q.call and c.band == q.band and abs(c.start_at - q.start_at) <= WINDOW
                and mode_group(c.mode) == mode_group(q.mode))

    for index, qso_id in got.items():
        assert fits(confs[index], by_id[qso_id])
    free = [q for q in qsos if q.id not in got.values()]
    for index, c in enumerate(confs):  # an unmatched confirmation has no free QSO that fits it
        assert index in got or not any(fits(c, q) for q in free)
    assert len(got) == _most_matches(confs, qsos, fits)


def _most_matches(confs: list[Confirmation], qsos: list[LoggedQso], fits: Any) -> int:
    """The size of a maximum matching, by augmenting paths (Kuhn): an independent check."""
    owner: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for q in qsos:
            if q.id not in seen and fits(confs[i], q):
                seen.add(q.id)
                if q.id not in owner or augment(owner[q.id], seen):
                    owner[q.id] = i
                    return True
        return False

    return sum(augment(i, set()) for i in range(len(confs)))


@given(CALLS, BANDS, MODES, st.integers(-29 * 60, 29 * 60), st.integers(31 * 60, 48 * 3600))
def test_a_lone_qso_is_found_within_29_minutes_and_never_past_31(
        call: str, band: str, mode: str, inside: int, outside: int) -> None:
    logged = [qso(7, call=call, band=band, mode=mode)]
    assert match([conf(call=call, band=band, mode=mode, at=T0 + timedelta(seconds=inside))], logged) == {0: 7}
    for sign in (1, -1):
        late = conf(call=call, band=band, mode=mode, at=T0 + sign * timedelta(seconds=outside))
        assert match([late], logged) == {}


def test_logged_off_by_29_minutes_two_close_qsos_still_pair_up() -> None:
    # real case (K9CTS and WB9ONU, 17:47:30 and 17:50:00): the log has both 29 minutes late; the nearest
    # fit alone would give the 17:50 confirmation the wrong QSO and leave 17:47:30 without one
    confs = [conf(at=T0.replace(minute=50)), conf(at=T0.replace(minute=47, second=30))]
    qsos = [qso(1, at=T0.replace(minute=50) + timedelta(minutes=29)),
            qso(2, at=T0.replace(minute=47, second=30) + timedelta(minutes=29))]
    assert match(confs, qsos) == {0: 1, 1: 2}


def test_a_tie_does_not_take_the_only_qso_another_confirmation_could_have() -> None:
    # A fits Q1 (5 min) and Q2 (25 min); B fits only Q1 (5 min): B gets Q1 and A gets Q2, in either order
    a, b = conf(at=T0 + timedelta(minutes=5)), conf(at=T0 - timedelta(minutes=5))
    qsos = [qso(1, at=T0), qso(2, at=T0 + timedelta(minutes=30))]
    assert match([a, b], qsos) == {0: 2, 1: 1}
    assert match([b, a], qsos) == {0: 1, 1: 2}
