"""QSL confirmations and how they find their QSO in the log. No I/O.

The matching rule is LoTW's (ARRL, 2003, "QSO matching requirements"): the worked call must be the
same *including* portable identifiers (W1AW/P is not W1AW, DL/W1AW is not W1AW: each is signed with
its own certificate), the band the same, the modes in the same mode group, and the times within 30
minutes of each other. ARRL suggests mode only as a tie-breaker because users remap modes, so among
several QSOs that fit, the one with the very same mode wins, then the one nearest in time.
eQSL confirmations are matched by the same rule.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from hamsrv.errors import HamsrvError
from hamsrv.ingest.normalize import ACTIVE_MODES, SUBMODE_PARENT, Reject, normalize
from hamsrv.model import band_for_mhz

WINDOW = timedelta(minutes=30)  # LoTW: "the date/time values are the same within 30 minutes"

# LoTW's mode groups (APP_LoTW_MODEGROUP). Which modes fall in which group is read off the real LoTW
# reports in shared/testdata/adif: SSB, FM, DIGITALVOICE -> PHONE; SSTV -> IMAGE; CW -> CW; RTTY, FT8,
# JT65, PSK31, OLIVIA, DATA ... -> DATA. Modes arrive here normalized (USB -> SSB/USB, C4FM ->
# DIGITALVOICE/C4FM), so the groups list parent modes only.
PHONE_MODES = frozenset({"SSB", "AM", "FM", "PHONE", "DIGITALVOICE"})
IMAGE_MODES = frozenset({"SSTV", "ATV", "FAX", "IMAGE"})
MODE_GROUPS = frozenset({"CW", "PHONE", "DATA", "IMAGE"})


class QslError(HamsrvError):
    """A sync that did not work, in words for the user. `kind`: login (the service refused the login),
    down (HTTP error or unreachable), timeout, truncated (a partial answer), unexpected (an answer
    hamsrv does not understand)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def parent_mode(mode: str | None) -> str | None:
    """The ADIF mode for a mode or a submode written as one (USB -> SSB, FT4 -> MFSK, C4FM -> DIGITALVOICE)."""
    if not mode:
        return None
    mode = mode.strip().upper()
    return SUBMODE_PARENT.get(mode, mode) if mode not in ACTIVE_MODES else mode


def mode_group(mode: str | None) -> str | None:
    """CW, PHONE, IMAGE or DATA for an ADIF mode (or submode); None when the mode is unknown."""
    mode = parent_mode(mode)
    if not mode:
        return None
    if mode == "CW":
        return "CW"
    if mode in PHONE_MODES:
        return "PHONE"
    if mode in IMAGE_MODES:
        return "IMAGE"
    return "DATA"


@dataclass(frozen=True, slots=True)
class Confirmation:
    """One confirmation as LoTW or eQSL sent it, ready to match."""

    service: str
    call: str
    start_at: datetime
    band: str | None
    mode: str | None
    submode: str | None
    mode_group: str | None
    qsl_date: date | None
    fields: Mapping[str, str] = field(default_factory=dict, compare=False)


def confirmation_from_fields(service: str, fields: Mapping[str, str], received: date) -> Confirmation | Reject:
    """A record of a LoTW report or an eQSL inbox file as a Confirmation (or why it cannot be one).
    LoTW puts its confirmation date in QSLRDATE (FACTS 3.2); eQSL sends none, so the day it arrived."""
    qso = normalize(fields, lotw_report=service == "lotw")
    if isinstance(qso, Reject):
        return qso
    group = fields.get("APP_LOTW_MODEGROUP", "").strip().upper()
    qsl_date = qso.lotw_qslrdate if service == "lotw" else None
    return Confirmation(service, qso.call, qso.start_at, qso.band, qso.mode, qso.submode,
                        group if group in MODE_GROUPS else mode_group(qso.mode), qsl_date or received, fields)


@dataclass(frozen=True, slots=True)
class LoggedQso:
    """What matching needs of a QSO in the log."""

    id: int
    call: str
    start_at: datetime
    band: str | None
    freq: float | None
    mode: str | None
    submode: str | None = None

    @property
    def any_band(self) -> str | None:
        """The band, or the one its frequency lies in (logs may hold either)."""
        return self.band or (band_for_mhz(self.freq) if self.freq is not None else None)


def _fit(conf: Confirmation, qso: LoggedQso) -> tuple[int, timedelta] | None:
    """How well a QSO fits a confirmation (lower is better), or None when LoTW's rule says no."""
    if conf.call != qso.call or conf.band is None or conf.band != qso.any_band:
        return None
    apart = abs(conf.start_at - qso.start_at)
    if apart > WINDOW:
        return None
    qso_group = mode_group(qso.mode)
    if conf.mode_group and qso_group and conf.mode_group != qso_group:
        return None
    specific = conf.submode or conf.mode
    if specific and specific == (qso.submode or qso.mode):
        rank = 0  # the very same mode
    elif conf.mode_group and conf.mode_group == qso_group:
        rank = 1
    else:
        rank = 2  # a mode is missing on one side: the call, band and time decide
    return rank, apart


def match(confirmations: Sequence[Confirmation], qsos: Iterable[LoggedQso]) -> dict[int, int]:
    """Confirmation index -> QSO id. Each QSO takes at most one confirmation and the best fits go
    first, so two QSOs with the same station on one day each get their own confirmation."""
    by_call: dict[str, list[LoggedQso]] = {}
    for qso in qsos:
        by_call.setdefault(qso.call, []).append(qso)
    pairs = []
    for index, conf in enumerate(confirmations):
        for qso in by_call.get(conf.call, ()):
            fit = _fit(conf, qso)
            if fit is not None:
                pairs.append((fit, index, qso.id))
    # On equal fit, the confirmation and the QSO with fewer other choices go first, so a tie does not
    # take the only QSO another confirmation could have had.
    conf_choices = Counter(index for _, index, _ in pairs)
    qso_choices = Counter(qso_id for _, _, qso_id in pairs)
    pairs.sort(key=lambda p: (p[0], conf_choices[p[1]], qso_choices[p[2]], p[1], p[2]))
    matched: dict[int, int] = {}
    taken: set[int] = set()
    for _, index, qso_id in pairs:
        if index not in matched and qso_id not in taken:
            matched[index] = qso_id
            taken.add(qso_id)
    return matched
