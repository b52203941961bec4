"""Spot filters shared by `/ws/firehose` (query string and subscribe messages) and `GET /api/spots`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from hamsrv.errors import InputError
from hamsrv.model import Spot, bounded_int, normalize_band

CONTINENTS = frozenset({"AF", "AN", "AS", "EU", "NA", "OC", "SA"})
MAX_FILTER_VALUES = 400
_MODE = re.compile(r"[A-Z0-9-]{1,16}")


@dataclass(frozen=True, slots=True)
class SpotFilter:
    """The spots a client wants; None means any. Hashable: equal filters share one group and frame."""

    band: frozenset[str] | None = None
    mode: frozenset[str] | None = None
    cont: frozenset[str] | None = None
    dxcc: frozenset[int] | None = None
    spotter_cont: frozenset[str] | None = None

    def matches(self, spot: Spot) -> bool:
        return ((self.band is None or spot.band in self.band)
                and (self.mode is None or (spot.mode or "").upper() in self.mode)
                and (self.cont is None or spot.cont in self.cont)
                and (self.dxcc is None or spot.dxcc in self.dxcc)
                and (self.spotter_cont is None or spot.spotter_cont in self.spotter_cont))

    def to_dict(self) -> dict[str, list[str] | list[int]]:
        """The canonical form echoed in the `subscribed` acknowledgement."""
        out: dict[str, list[str] | list[int]] = {}
        for name in FILTER_FIELDS:
            values = getattr(self, name)
            if values is not None:
                out[name] = sorted(values)
        return out


EVERYTHING = SpotFilter()
_Parser = Callable[[str | int], str | int]


def _band(value: str | int) -> str:
    band = normalize_band(str(value))
    if band is None:
        raise InputError(f"unknown band {value!r} (ADIF band names such as 20m, 2m, 70cm)", field="band")
    return band


def _mode(value: str | int) -> str:
    mode = str(value).strip().upper()
    if not _MODE.fullmatch(mode):
        raise InputError(f"invalid mode {value!r}", field="mode")
    return mode


def _continent(field: str) -> _Parser:
    def parse(value: str | int) -> str:
        cont = str(value).strip().upper()
        if cont not in CONTINENTS:
            raise InputError(f"unknown continent {value!r} (one of {', '.join(sorted(CONTINENTS))})",
                             field=field)
        return cont
    return parse


def _dxcc(value: str | int) -> int:
    number = bounded_int(str(value)[:40], 999)
    if number is None:
        raise InputError(f"invalid DXCC entity number {str(value)[:40]!r}", field="dxcc")
    return number


_FIELD_PARSERS = {"band": _band, "mode": _mode, "cont": _continent("cont"), "dxcc": _dxcc,
                  "spotter_cont": _continent("spotter_cont")}
FILTER_FIELDS = tuple(_FIELD_PARSERS)


def _values(field: str, raw: object) -> list[str | int]:
    """A field's values: a list, or one value; strings may hold several values separated by commas."""
    items = raw if isinstance(raw, list) else [raw]
    out: list[str | int] = []
    for item in items:
        if isinstance(item, str):
            out += [part for part in (p.strip() for p in item.split(",")) if part]
        elif isinstance(item, int) and not isinstance(item, bool):
            out.append(item)
        else:
            raise InputError(f"{field} values must be strings or integers", field=field)
    if len(out) > MAX_FILTER_VALUES:
        raise InputError(f"too many {field} values (at most {MAX_FILTER_VALUES})", field=field)
    return out


def parse_filter(fields: Mapping[str, object]) -> SpotFilter:
    """Validate filter fields (from a query string or a subscribe message); empty values mean any."""
    chosen: dict[str, frozenset] = {}
    for name, raw in fields.items():
        parse = _FIELD_PARSERS.get(name)
        if parse is None:
            raise InputError(f"unknown filter field {name!r} (known: {', '.join(FILTER_FIELDS)})", field=name)
        values = _values(name, raw)
        if values:
            chosen[name] = frozenset(parse(v) for v in values)
    return SpotFilter(**chosen)


MAX_SPOT_ID = 2**62


def parse_query(query: str) -> tuple[SpotFilter, int | None]:
    """`band=20m,40m&mode=CW&since=123` -> (filter, since); repeated fields add values."""
    fields: dict[str, list[str]] = {}
    since: int | None = None
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "since":
            since = bounded_int(value, MAX_SPOT_ID)
            if since is None:
                raise InputError(f"since must be a spot id (a whole number), not {value[:40]!r}", field="since")
        else:
            fields.setdefault(name, []).append(value)
    return parse_filter(fields), since


def parse_subscribe(text: str) -> SpotFilter:
    """A client's `{"subscribe": {field: [values]}}` message; raises InputError saying what is wrong."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"message is not JSON: {exc}") from exc
    if not isinstance(message, dict) or set(message) != {"subscribe"} or not isinstance(message["subscribe"], dict):
        raise InputError('expected {"subscribe": {"band": [...], "mode": [...], ...}}')
    return parse_filter(message["subscribe"])
