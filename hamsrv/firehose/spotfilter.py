"""DXSpider spot filters (`accept/spots`, `reject/spots`, the `sh/dx` search words), sans-I/O.

An expression is what DXSpider's Spot.pm `$filterdef` accepts, with `and`, `or`, `not` and brackets
(`and` binds tighter; two terms side by side are joined by `and`):

    on hf/cw and not by_zone 14,15      call VP8,VK0 or info iota      by_dxcc 291 and on 6m

| word | matches | value |
|---|---|---|
| `on`, `freq` | frequency | band names (`20m`, `hf`, `hf/cw`) or `14000/14350` kHz, comma separated |
| `call` | the DX call | prefixes, `*` and `?` wildcards (`call VP8*`) |
| `by`, `spotter` | the spotter's call | as `call` |
| `origin` | the node it entered the network at | as `call` |
| `ip` | the spotter's address (PC61) | prefixes |
| `info` | the comment | text, case-insensitive, anywhere in the comment |
| `call_dxcc`, `dxcc`, `by_dxcc` | DXCC entity of the DX / spotter | ADIF entity numbers (DXSpider uses its own numbering) |
| `call_zone`, `zone`, `cq`, `by_zone`, `byzone`, `bycq` | CQ zone of the DX / spotter | numbers |
| `call_itu`, `itu`, `by_itu`, `byitu` | ITU zone of the DX / spotter | numbers |
| `call_state`, `state`, `by_state`, `bystate` | US state of the DX / spotter, when the line carried one | two letters |

Anything else is refused with a message saying what was not understood, never accepted and ignored,
and the user's filter stays as it was. Parsing never evaluates code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from hamsrv.firehose.modes import FILTER_MODES, NOT_DIGITAL
from hamsrv.model import BAND_NAMES, BANDS, Spot


class FilterError(ValueError):
    """A filter the node cannot understand; the message is shown to the user as-is."""


Predicate = Callable[[Spot], bool]

_NUMBER = re.compile(r"\d+(?:\.\d*)?")
BAND_GROUPS: dict[str, tuple[str, ...]] = {
    "lf": ("2190m", "630m", "560m"),
    "hf": ("160m", "80m", "60m", "40m", "30m", "20m", "17m", "15m", "12m", "10m"),
    "vhf": ("8m", "6m", "5m", "4m", "2m", "1.25m"),
    "uhf": ("70cm", "33cm", "23cm", "13cm"),
    "shf": ("9cm", "6cm", "3cm", "1.25cm", "6mm", "4mm", "2.5mm", "2mm", "1mm", "submm"),
}


def spot_mode(spot: Spot) -> str | None:
    """The spot's mode, else the first comment word when it names a mode (RBN: `CW 24 dB ...`)."""
    if spot.mode:
        return spot.mode.upper()
    words = spot.comment.split(maxsplit=1)
    if words and words[0].lower() in FILTER_MODES:
        return words[0].upper()
    return None


def _band_range(name: str) -> tuple[float, float]:
    for band, lo, hi in BANDS:
        if band == name:
            return lo * 1000.0, hi * 1000.0
    raise KeyError(name)


def _freq_item(item: str) -> Predicate:
    """`20m`, `hf/cw`, `14000/14350` (kHz)."""
    text = item.strip().lower()
    left, _, right = text.partition("/")
    if _NUMBER.fullmatch(left) and _NUMBER.fullmatch(right):
        lo, hi = float(left), float(right)
        if lo > hi:
            raise FilterError(f"frequency range {item!r} runs backwards")
        return lambda s: lo <= s.freq <= hi
    if left in BAND_GROUPS:
        ranges = tuple(_band_range(b) for b in BAND_GROUPS[left])
    elif left in BAND_NAMES:
        ranges = (_band_range(left),)
    else:
        raise FilterError(f"unknown band {left!r} (use e.g. 20m, 70cm, hf, vhf or 14000/14350)")
    if right and right not in FILTER_MODES:
        raise FilterError(f"unknown mode {right!r} (known: {', '.join(sorted(FILTER_MODES))})")
    wanted = FILTER_MODES[right] if right else None

    def matches(spot: Spot) -> bool:
        if not any(lo <= spot.freq <= hi for lo, hi in ranges):
            return False
        if not right:
            return True
        mode = spot_mode(spot)
        return (mode is not None and mode not in NOT_DIGITAL) if wanted is None else mode in wanted

    return matches


def _call_pattern(values: list[str]) -> re.Pattern[str]:
    """DXSpider 'c' fields: each value a prefix, `*`/`?` shell wildcards allowed (`^(?:$val)`)."""
    parts = []
    for v in values:
        if not re.fullmatch(r"[A-Z0-9/*?#-]{1,20}", v):
            raise FilterError(f"{v!r} is not a callsign or prefix")
        parts.append(re.escape(v).replace(r"\*", ".*").replace(r"\?", "."))
    return re.compile("^(?:" + "|".join(parts) + ")")


def _numbers(word: str, values: list[str], hi: int) -> frozenset[int]:
    out = set()
    for v in values:
        if not v.isdecimal() or not 0 < int(v) <= hi:
            raise FilterError(f"{word} wants numbers from 1 to {hi}, not {v!r}"
                              + (" (DXCC entities are ADIF numbers here, e.g. 223 for England)"
                                 if "dxcc" in word else ""))
        out.add(int(v))
    return frozenset(out)


def _extra(key: str) -> Callable[[Spot], str | None]:
    return lambda s: s.extra.get(key)


def _field(word: str, raw: str) -> Predicate:
    values = [v for v in raw.upper().split(",") if v]
    if not values:
        raise FilterError(f"{word} needs a value")
    if word in ("on", "freq"):
        items = [_freq_item(v) for v in raw.split(",") if v]
        return lambda s: any(p(s) for p in items)
    if word in ("call", "by", "spotter", "origin", "ip"):
        pattern = _call_pattern(values) if word != "ip" else re.compile(
            "^(?:" + "|".join(re.escape(v.replace(":", ",")) for v in values) + ")", re.IGNORECASE)
        get: Callable[[Spot], str | None] = {
            "call": lambda s: s.dx, "by": lambda s: s.spotter, "spotter": lambda s: s.spotter,
            "origin": lambda s: s.origin, "ip": _extra("spotter_ip")}[word]
        return lambda s: pattern.match(get(s) or "") is not None
    if word == "info":
        texts = [v.lower() for v in raw.split(",") if v]
        return lambda s: any(t in s.comment.lower() for t in texts)
    if word in ("call_dxcc", "dxcc", "by_dxcc", "bydxcc"):
        wanted = _numbers(word, values, 999)
        if word.startswith("by"):
            return lambda s: s.spotter_dxcc in wanted
        return lambda s: s.dxcc in wanted
    if word in ("call_zone", "zone", "cq"):
        zones = _numbers(word, values, 40)
        return lambda s: s.cqz in zones
    if word in ("by_zone", "byzone", "bycq"):
        zones = _numbers(word, values, 40)
        return lambda s: _spotter_zone(s) in zones
    if word in ("call_state", "state", "by_state", "bystate"):
        states = frozenset(values)
        key = "spotter_state" if word.startswith("by") else "dx_state"
        return lambda s: s.extra.get(key) in states
    if word in ("call_itu", "itu", "by_itu", "byitu"):
        itu = _numbers(word, values, 90)
        key = "spotter_ituz" if word.startswith("by") else "dx_ituz"
        return lambda s: (s.extra.get(key) or "").isdecimal() and int(s.extra[key]) in itu
    raise FilterError(f"unknown filter word {word!r}")  # unreachable: FIELD_WORDS lists the words


def _spotter_zone(spot: Spot) -> int | None:
    zone = spot.extra.get("spotter_cqz") or spot.extra.get("spotter_zone")
    return int(zone) if zone and zone.isdecimal() else None


FIELD_WORDS = frozenset({"on", "freq", "call", "by", "spotter", "origin", "ip", "info", "call_dxcc",
                         "dxcc", "by_dxcc", "bydxcc", "call_zone", "zone", "cq", "by_zone", "byzone",
                         "bycq", "call_state", "state", "by_state", "bystate", "call_itu", "itu",
                         "by_itu", "byitu"})
_TOKEN = re.compile(r"\(|\)|[^\s()]+")


class _Parser:
    """expr := and_expr ('or' and_expr)* ; and_expr := unary (['and'] unary)* ;
    unary := 'not' unary | '(' expr ')' | WORD VALUE."""

    def __init__(self, text: str):
        self.tokens = _TOKEN.findall(text)
        self.at = 0

    def peek(self) -> str | None:
        return self.tokens[self.at].lower() if self.at < len(self.tokens) else None

    def take(self) -> str:
        if self.at >= len(self.tokens):
            raise FilterError("the filter ends too early")
        self.at += 1
        return self.tokens[self.at - 1]

    def parse(self) -> Predicate:
        if not self.tokens:
            raise FilterError("empty filter")
        result = self.expr()
        if self.at != len(self.tokens):
            raise FilterError(f"cannot understand {' '.join(self.tokens[self.at:])[:40]!r} in the filter")
        return result

    def expr(self) -> Predicate:
        terms = [self.and_expr()]
        while self.peek() == "or":
            self.take()
            terms.append(self.and_expr())
        return terms[0] if len(terms) == 1 else (lambda s: any(t(s) for t in terms))

    def and_expr(self) -> Predicate:
        terms = [self.unary()]
        while self.peek() not in (None, "or", ")"):
            if self.peek() == "and":
                self.take()
            terms.append(self.unary())
        return terms[0] if len(terms) == 1 else (lambda s: all(t(s) for t in terms))

    def unary(self) -> Predicate:
        word = self.take().lower()
        if word == "not":
            inner = self.unary()
            return lambda s: not inner(s)
        if word == "(":
            inner = self.expr()
            if self.take() != ")":
                raise FilterError("a bracket is not closed")
            return inner
        if word in FIELD_WORDS:
            return _field(word, self.take())
        raise FilterError(f"unknown filter word {word!r} (known: on, call, by, info, origin, call_dxcc, "
                          "by_dxcc, call_zone, by_zone, call_itu, by_itu, call_state, by_state, ip; "
                          "with and, or, not, brackets)")


def parse_expression(text: str) -> Predicate:
    """One DXSpider spot filter expression -> predicate; raises FilterError saying what is wrong."""
    if len(text) > 400:
        raise FilterError("filter too long (at most 400 characters)")
    return _Parser(text).parse()


@dataclass(frozen=True, slots=True)
class SpotRule:
    """One filter line: its text as the user typed it (normalised spacing) and its predicate."""

    text: str
    predicate: Predicate

    @classmethod
    def parse(cls, text: str) -> SpotRule:
        return cls(" ".join(text.split()), parse_expression(text))

    def __str__(self) -> str:
        return self.text

    def matches(self, spot: Spot) -> bool:
        return self.predicate(spot)


FILTER_SLOTS = range(10)  # DXSpider numbers filter lines 0-9; 1 when none is given


@dataclass(slots=True)
class UserFilter:
    """Per-user accept/reject lines, evaluated as DXSpider does: slot by slot, reject before accept;
    if any accept line exists and none matched, the spot is dropped."""

    accept: dict[int, SpotRule] = field(default_factory=dict)
    reject: dict[int, SpotRule] = field(default_factory=dict)

    def passes(self, spot: Spot) -> bool:
        if not self.accept and not self.reject:
            return True
        for slot in sorted(self.accept.keys() | self.reject.keys()):
            rejecting = self.reject.get(slot)
            if rejecting is not None and rejecting.matches(spot):
                return False
            accepting = self.accept.get(slot)
            if accepting is not None and accepting.matches(spot):
                return True
        return not self.accept

    def describe(self) -> list[str]:
        lines = [f"{kind}/spots {slot} {rule}"
                 for kind, rules in (("accept", self.accept), ("reject", self.reject))
                 for slot, rule in sorted(rules.items())]
        return lines or ["no spot filter: you get every spot"]
