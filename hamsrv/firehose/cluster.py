"""DX-cluster line protocol, sans-I/O: parse what nodes and RBN send, format what we send (FACTS 2).

`parse_line` turns one received line into an event, or None for anything that is not a spot, an
announcement or a WWV/WCY bulletin (prompts, banners, header-only fragments, garbled spots). It never
raises. Lines are matched by pattern, not by column, because long frequencies and calls shift the
AK1A columns. Accepted line shapes:

* `DX de SPOTTER: FREQ DXCALL comment HHMMZ [tail]` from DXSpider, AR-Cluster, CC Cluster and RBN;
  the tail after the time is the spotter's locator (`IO91`), zone (`14`) or US state (`CA`).
* `PC11^...` / `PC61^...` node sentences and `CC11^...` lines (`set/ve7cc`), which carry their date.
* `To ALL de CALL: text`, `To LOCAL de CALL <1405Z> : text`, `WX de CALL: text` -> Announce.
* `WWV de CALL <18Z> :   SFI=93, A=4, K=2, forecast` -> Wwv; `WCY de CALL <22> : K=9 ...` -> Wcy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hamsrv.firehose.lines import MAX_LINE
from hamsrv.firehose.modes import SKIMMER_MODES
from hamsrv.model import Spot, decode_text, is_cluster_call, valid_khz, without_control

# A spot time up to this far ahead of `now` is clock skew, not yesterday's spot.
FUTURE_SKEW = timedelta(minutes=5)

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBER = {m.upper(): i for i, m in enumerate(MONTHS, 1)}

# CC Cluster writes the DX station's US state / Canadian province right before the time (`MI 0014Z ID`).
US_STATES_AND_PROVINCES = frozenset({
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS",
    "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC",
    "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY",
    "PR", "VI", "GU", "AB", "BC", "MB", "NB", "NL", "NS", "NT", "NU", "ON", "PE", "QC", "SK", "YT",
})

_DX_HEAD = re.compile(r"DX\s+de\s+([^\s:]{1,20}):\s*(\d{1,12}(?:\.\d{1,4})?)\s+(\S{1,20})(?!\S)\s*", re.IGNORECASE)
_TIME = re.compile(r"([01]\d|2[0-3])([0-5]\d)Z")
_GRID = re.compile(r"[A-R]{2}\d{2}(?:[A-X]{2})?", re.IGNORECASE)
_TAIL = re.compile(r"[A-Z0-9]{1,6}", re.IGNORECASE)
_SKIMMER = re.compile(
    r"(?P<mode>[A-Z][A-Z0-9]{1,6})\s+(?P<snr>[+-]?\d{1,3})\s?dB\b"
    r"(?:\s+(?P<speed>\d{1,4})\s+(?P<unit>WPM|BPS)\b)?"
    r"(?:\s+(?P<grid>[A-R]{2}\d{2}(?:[A-X]{2})?)\b)?"
    r"(?:\s+(?P<kind>NCDXF B|BEACON|CQ|DX)\b)?", re.IGNORECASE)
_ANNOUNCE = re.compile(r"(?:To\s+(?P<to>[A-Z0-9/-]+)|(?P<wx>WX))\s+de\s+(?P<sender>[A-Z0-9/#-]+)"
                       r"\s*(?:<\s*\d{1,4}Z?\s*>)?\s*:\s*(?P<text>.*)", re.IGNORECASE)
_BULLETIN = re.compile(r"(?P<kind>WWV|WCY)\s+de\s+(?P<sender>[A-Z0-9/#-]+)\s*"
                       r"(?:<\s*(?P<hour>\d{1,2})\d{0,2}Z?\s*>)?\s*:\s*(?P<text>.*)", re.IGNORECASE)
_DX_STATE = re.compile(r"\s{2}([A-Z]{2}) $")
_KEY_VALUE = re.compile(r"([A-Za-z]+)\s*=\s*([^\s,]+)")


@dataclass(frozen=True, slots=True)
class DxSpot:
    spot: Spot


@dataclass(frozen=True, slots=True)
class Announce:
    """`to` is upper-case: ALL, LOCAL, WX (for `WX de` lines) or whatever the node addressed."""

    sender: str
    to: str
    text: str


@dataclass(frozen=True, slots=True)
class Wwv:
    """Geomagnetic bulletin; `hour` is the UTC hour it refers to, `text` the forecast words."""

    sender: str
    hour: int | None
    sfi: int | None
    a: int | None
    k: int | None
    text: str


@dataclass(frozen=True, slots=True)
class Wcy:
    """DK0WCY bulletin: K, expected K, A, sunspot number R, SFI, solar activity, geomagnetic field,
    aurora (the last three as the short words the bulletin uses, e.g. `maj`, `sev`, `aurora`)."""

    sender: str
    hour: int | None
    k: int | None
    expk: int | None
    a: int | None
    r: int | None
    sfi: int | None
    sa: str | None
    gmf: str | None
    au: str | None


ClusterEvent = DxSpot | Announce | Wwv | Wcy


@dataclass(frozen=True, slots=True)
class SkimmerInfo:
    """What an RBN-style comment (`CW 24 dB 22 WPM CQ`, `FT8 -12 dB FK68 CQ`) says."""

    mode: str
    snr: int
    wpm: int | None = None
    bps: int | None = None
    grid: str | None = None
    kind: str | None = None  # CQ, DX, BEACON, NCDXF B


def parse_line(line: str | bytes, now: datetime | None = None) -> ClusterEvent | None:
    """One received line -> event, or None when it is none of the known shapes (never raises).

    `now` (UTC) dates the `HHMMZ` of `DX de` lines; it defaults to the current time.
    """
    try:
        return _parse(line, now)
    except (ValueError, OverflowError, IndexError):  # a garbled field slipped past the patterns
        return None


def _parse(line: str | bytes, now: datetime | None) -> ClusterEvent | None:
    if len(line) > MAX_LINE:
        return None
    text = decode_text(line) if isinstance(line, bytes) else line
    text = without_control(text.replace("\t", " ")).strip()  # CR, LF, bells, telnet junk; tabs are spaces
    head = text[:4].upper()
    if head == "DX D":
        return _parse_dx_de(text, now or datetime.now(UTC))
    if head in ("PC11", "PC61"):
        return _parse_pc(text)
    if head == "CC11":
        return _parse_cc11(text)
    if head in ("WWV ", "WCY "):
        return _parse_bulletin(text)
    if head.startswith(("TO ", "WX ")):
        m = _ANNOUNCE.fullmatch(text)
        if m is None:
            return None
        to = (m["to"] or m["wx"]).upper()
        return Announce(sender=m["sender"].upper(), to=to, text=m["text"].strip())
    return None


def _parse_dx_de(text: str, now: datetime) -> DxSpot | None:
    m = _DX_HEAD.match(text)
    if m is None:
        return None
    spotter, dx, freq = m[1].upper(), m[3].upper(), float(m[2])
    if not (is_cluster_call(spotter) and is_cluster_call(dx) and valid_khz(freq) is not None):
        return None
    rest = text[m.end():]
    tokens = rest.rsplit(None, 2)
    tail: str | None = None
    if tokens and _TIME.fullmatch(tokens[-1]):
        time_token = tokens[-1]
    elif len(tokens) >= 2 and _TIME.fullmatch(tokens[-2]) and _TAIL.fullmatch(tokens[-1]):
        time_token, tail = tokens[-2], tokens[-1]
    else:
        return None
    comment = rest[: rest.rfind(time_token, 0, len(rest) - (len(tail) if tail else 0))]
    state = _DX_STATE.search(comment)
    if state is not None and state[1] in US_STATES_AND_PROVINCES:
        comment = comment[: state.start()]
    else:
        state = None
    when = _recent_time(int(time_token[:2]), int(time_token[2:4]), now)
    spot = Spot(spotter=spotter, freq=freq, dx=dx, comment=comment.strip(), time=when)
    if state is not None:
        spot.extra["dx_state"] = state[1]
    if tail is not None:
        if _GRID.fullmatch(tail):
            spot.spotter_grid = tail.upper()
        elif tail.isdigit():
            spot.extra["spotter_zone"] = tail
        else:
            spot.extra["spotter_state"] = tail.upper()
    _apply_skimmer_comment(spot)
    return DxSpot(spot)


def _recent_time(hour: int, minute: int, now: datetime) -> datetime:
    """HHMMZ on the date of `now`, or of the day before when that would lie in the future."""
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    when = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return when - timedelta(days=1) if when > now + FUTURE_SKEW else when


def parse_skimmer_comment(comment: str) -> SkimmerInfo | None:
    """Read the RBN tokens at the start of a spot comment; None when it does not start with them."""
    m = _SKIMMER.match(comment.strip())
    if m is None or m["mode"].upper() not in SKIMMER_MODES:
        return None
    speed = int(m["speed"]) if m["speed"] else None
    unit = (m["unit"] or "").upper()
    return SkimmerInfo(mode=m["mode"].upper(), snr=int(m["snr"]), wpm=speed if unit == "WPM" else None,
                       bps=speed if unit == "BPS" else None,
                       grid=m["grid"].upper() if m["grid"] else None,
                       kind=" ".join(m["kind"].upper().split()) if m["kind"] else None)


def _apply_skimmer_comment(spot: Spot) -> None:
    spot.skimmer = spot.spotter.endswith("-#")
    info = parse_skimmer_comment(spot.comment)
    if info is None:
        return
    spot.mode, spot.snr, spot.wpm = info.mode, info.snr, info.wpm
    if info.bps is not None:
        spot.extra["bps"] = str(info.bps)
    if info.grid is not None:
        spot.extra["dx_grid"] = info.grid
    if info.kind is not None:
        spot.extra["rbn_type"] = info.kind


def _parse_date_time(date: str, hhmmz: str) -> datetime | None:
    """`30-Apr-2014` / ` 7-Feb-2022` and `2253Z` -> aware UTC datetime."""
    parts = date.strip().split("-")
    t = _TIME.fullmatch(hhmmz.strip())
    if len(parts) != 3 or t is None or parts[1].upper() not in _MONTH_NUMBER:
        return None
    return datetime(int(parts[2]), _MONTH_NUMBER[parts[1].upper()], int(parts[0]),
                    int(t[1]), int(t[2]), tzinfo=UTC)


def _node_spot(freq: str, dx: str, date: str, hhmmz: str, comment: str, spotter: str,
               origin: str) -> Spot | None:
    khz = float(freq)
    dx, spotter, origin = dx.strip().upper(), spotter.strip().upper(), origin.strip().upper()
    when = _parse_date_time(date, hhmmz)
    if when is None or not (valid_khz(khz) is not None and is_cluster_call(dx) and is_cluster_call(spotter)):
        return None
    spot = Spot(spotter=spotter, freq=khz, dx=dx, comment=comment.strip(), time=when,
                origin=origin or None)
    _apply_skimmer_comment(spot)
    return spot


def _parse_pc(text: str) -> DxSpot | None:
    """PC11^freq^dx^date^time^comment^spotter^origin^Hhops^~ (PC61 adds the spotter IP before hops)."""
    fields = text.split("^")
    ip = None
    if fields[0] == "PC61" and len(fields) >= 10:
        ip, hops = fields[8], fields[9]
    elif fields[0] == "PC11" and len(fields) >= 9:
        hops = fields[8]
    else:
        return None
    spot = _node_spot(*fields[1:8])
    if spot is None:
        return None
    if ip:
        spot.extra["spotter_ip"] = ip.strip()
    if hops[:1] == "H" and hops[1:].isdecimal():
        spot.extra["hops"] = hops[1:]
    return DxSpot(spot)


def _parse_cc11(text: str) -> DxSpot | None:
    """CC11^freq^dx^date^time^comment^spotter^cc-dx^cc-spotter^origin^ituDx^cqDx^ituSp^cqSp^stateDx^
    stateSp^countryDx^countrySp^gridDx^gridSp (CC Cluster `set/ve7cc`; the cc-* numbers are CC
    Cluster's own country numbers, not ADIF DXCC, so they are ignored)."""
    f = text.split("^")
    if len(f) < 10:
        return None
    spot = _node_spot(f[1], f[2], f[3], f[4], f[5], f[6], f[9])
    if spot is None:
        return None
    if len(f) > 11 and f[11].strip().isdecimal():
        spot.cqz = int(f[11])
    for index, key in ((14, "dx_state"), (15, "spotter_state"), (18, "dx_grid")):
        if len(f) > index and f[index].strip():
            spot.extra[key] = f[index].strip()
    if len(f) > 19 and _GRID.fullmatch(f[19].strip()):
        spot.spotter_grid = f[19].strip().upper()
    return DxSpot(spot)


def _parse_bulletin(text: str) -> Wwv | Wcy | None:
    m = _BULLETIN.fullmatch(text)
    if m is None:
        return None
    sender, hour = m["sender"].upper(), int(m["hour"]) if m["hour"] else None
    values = {k.lower(): v for k, v in _KEY_VALUE.findall(m["text"])}
    if m["kind"].upper() == "WCY":
        if not values:
            return None
        return Wcy(sender=sender, hour=hour, k=_int(values.get("k")), expk=_int(values.get("expk")),
                   a=_int(values.get("a")), r=_int(values.get("r")), sfi=_int(values.get("sfi")),
                   sa=values.get("sa"), gmf=values.get("gmf"), au=values.get("au"))
    forecast = _KEY_VALUE.sub("", m["text"]).strip(" ,")
    if not values and not forecast:
        return None
    return Wwv(sender=sender, hour=hour, sfi=_int(values.get("sfi")), a=_int(values.get("a")),
               k=_int(values.get("k")), text=forecast)


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.lstrip("+-").isdecimal() else None


def format_dx_line(spot: Spot, width: int = 80, slot1: str = "", slot2: str | None = None) -> str:
    """The AK1A `DX de` line DXSpider sends (FACTS 2.1), without line terminator.

    The frequency stays right-aligned at column 23 by eating spotter padding; a DX call longer than 12
    characters takes its room from the comment, so the time stays at column `width - 10`. `slot1`
    ends the comment and `slot2` follows the time (DXCommandmode.pm format_dx_spot: `$comment =
    substr($comment, 0, $clth-length($slot1)) . $slot1`, `"$front %-s $t$slot2"`); by default slot2 is
    the spotter's locator when known.
    """
    left = f"DX de {spot.spotter}:"
    freq = f"{spot.freq:.1f}"
    front = left + " " * max(1, 24 - len(left) - len(freq)) + freq + "  " + f"{spot.dx:<12}"
    comment_width = max(0, width - 12 - len(front))  # 30 columns at width 80, as DXSpider
    comment = without_control(spot.comment, " ")[:comment_width].rstrip()
    if slot1:
        comment = f"{comment:<{comment_width}}"[: max(0, comment_width - len(slot1))] + slot1
    if slot2 is None:
        slot2 = f" {spot.spotter_grid}" if spot.spotter_grid else ""
    return f"{front} {comment:<{comment_width}} {spot.time.astimezone(UTC):%H%M}Z{slot2}"


def cluster_date(t: datetime) -> str:
    """DXSpider's `cldate`: ` 7-Feb-2022` (day padded to two characters, FACTS 2.1)."""
    return f"{t.day:2d}-{MONTHS[t.month - 1]}-{t.year:04d}"


def format_announce(a: Announce) -> str:
    """DXCommandmode.pm announce: `"$to$target de $_[0]: $text"`, `$to` being `To ` except for WX
    (DXProt.pm send_announce: `$target = "WX"; $to = '';`)."""
    head = "WX" if a.to == "WX" else f"To {a.to}"
    return f"{head} de {a.sender}: {without_control(a.text, ' ')}"


def format_wwv(w: Wwv) -> str:
    """DXCommandmode.pm wwv: `"WWV de $_[6] <$_[1]>:   SFI=$_[2], A=$_[3], K=$_[4], $_[5]"`."""
    return (f"WWV de {w.sender} <{_blank(w.hour)}>:   SFI={_blank(w.sfi)}, A={_blank(w.a)}, "
            f"K={_blank(w.k)}, {without_control(w.text, ' ')}")


def format_wcy(w: Wcy) -> str:
    """DXCommandmode.pm wcy: `"WCY de $_[10] <$_[1]> : K=$_[4] expK=$_[5] A=$_[3] R=$_[6] SFI=$_[2]
    SA=$_[7] GMF=$_[8] Au=$_[9]"`."""
    return (f"WCY de {w.sender} <{_blank(w.hour)}> : K={_blank(w.k)} expK={_blank(w.expk)} A={_blank(w.a)} "
            f"R={_blank(w.r)} SFI={_blank(w.sfi)} SA={_blank(w.sa)} GMF={_blank(w.gmf)} Au={_blank(w.au)}")


def _blank(value: object) -> str:
    return "" if value is None else str(value)
