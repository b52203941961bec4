"""QSL confirmations and how they find their QSO in the log. No I/O.

The matching rule is LoTW's (ARRL, 2003, "QSO matching requirements"): the worked call must be the
same *including* portable identifiers (W1AW/P is not W1AW, DL/W1AW is not W1AW: each is signed with
its own certificate), the band the same, the modes in the same mode group, and the times within 30
minutes of each other. ARRL suggests mode only as a tie-breaker because users remap modes, so among
several QSOs that fit, the one with the very same mode wins, then the one nearest in time.
eQSL confirmations are matched by the same rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

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
    """Confirmation index -> QSO id. Each QSO takes at most one confirmation. Confirmations that compete
    for the same QSOs (the same station worked twice within the hour) are assigned together: as many
    matched as possible, then the best fits (same mode, nearest in time), so two QSOs with the same
    station each get their own confirmation."""
    by_call: dict[str, list[LoggedQso]] = {}
    for qso in qsos:
        by_call.setdefault(qso.call, []).append(qso)
    options: dict[int, dict[int, int]] = {}  # confirmation index -> {qso id: cost}
    for index, conf in enumerate(confirmations):
        fits = {qso.id: _cost(fit) for qso in by_call.get(conf.call, ()) if (fit := _fit(conf, qso)) is not None}
        if fits:
            options[index] = fits
    matched: dict[int, int] = {}
    for group in _competing(options):
        matched.update(_assign(group, options))
    return matched


def _cost(fit: tuple[int, timedelta]) -> int:
    """One number per fit: the mode rank outweighs any sum of time differences (in ms)."""
    rank, apart = fit
    return rank * 10**12 + round(apart.total_seconds() * 1000)


def _competing(options: dict[int, dict[int, int]]) -> list[list[int]]:
    """Confirmation indexes grouped so that no QSO fits confirmations of two groups."""
    parent = {index: index for index in options}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_for_qso: dict[int, int] = {}
    for index, fits in options.items():
        for qso_id in fits:
            parent[root(index)] = root(first_for_qso.setdefault(qso_id, index))
    groups: dict[int, list[int]] = {}
    for index in options:
        groups.setdefault(root(index), []).append(index)
    return list(groups.values())


def _assign(group: list[int], options: dict[int, dict[int, int]]) -> dict[int, int]:
    """Most matches at the lowest total cost: min-cost max-flow by successive shortest paths (Bellman-Ford
    on the residual graph). Groups are tiny in real logs (one station worked a few times in an hour)."""
    if len(group) == 1:
        fits = options[group[0]]
        return {group[0]: min(fits, key=lambda q: (fits[q], q))}
    source, sink = ("s",), ("t",)
    cap: dict[tuple[Any, Any], int] = {}
    cost: dict[tuple[Any, Any], int] = {}
    edges: dict[Any, list[Any]] = {source: [], sink: []}

    def edge(a: Any, b: Any, c: int) -> None:
        cap[a, b], cap[b, a], cost[a, b], cost[b, a] = 1, 0, c, -c
        edges.setdefault(a, []).append(b)
        edges.setdefault(b, []).append(a)

    for index in group:
        edge(source, ("c", index), 0)
        for qso_id, c in options[index].items():
            if ("q", qso_id) not in edges:
                edge(("q", qso_id), sink, 0)
            edge(("c", index), ("q", qso_id), c)
    while True:
        dist: dict[Any, int] = {source: 0}
        back: dict[Any, Any] = {}
        for _ in range(len(edges)):
            changed = False
            for a in list(dist):
                for b in edges[a]:
                    if cap[a, b] > 0 and dist[a] + cost[a, b] < dist.get(b, 1 << 62):
                        dist[b], back[b], changed = dist[a] + cost[a, b], a, True
            if not changed:
                break
        if sink not in dist:
            break
        node = sink
        while node != source:
            prev = back[node]
            cap[prev, node] -= 1
            cap[node, prev] += 1
            node = prev
    return {index: node[1] for index in group for node in edges[("c", index)]
            if node[0] == "q" and cap[("c", index), node] == 0}
