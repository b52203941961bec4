"""DX-cluster node-to-node PC protocol, sans-I/O (DXSpider `perl/DXProt.pm`, `DXProtout.pm`,
`DXProtHandle.pm`; FACTS 2.5).

A sentence is `PCnn^field^field^...^` with an optional `H<hops>` as its last field and an optional `~`
after it. There is no checksum in the PC protocol: integrity is TCP's, and loops are stopped by the hop
count, by every node's duplicate checks and (PC92/PC93) by per-node time ids.

`parse_frame` splits any line into a `Frame` (or None for lines that are not PC sentences); `decode`
turns the frames a spot-only node acts on into typed messages (or None when a field is malformed, as
DXSpider's `check` table dumps them). The `pcNN` functions format what we send. Nothing here raises on
input, and nothing here knows about sockets or clocks: callers pass the time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hamsrv.firehose.cluster import Announce, DxSpot, Wcy, Wwv, cluster_date, parse_line
from hamsrv.firehose.lines import MAX_LINE
from hamsrv.model import Spot, band_for_mhz, is_cluster_call, without_control

DEFAULT_HOPS = 30  # DXProtVars.pm `$def_hopcount = 30`
PC11_HOPS = 25  # DXProtVars.pm `%hopcount = (11 => 25, ...)`
PC9X_HOPS = 99  # DXProtout.pm `_gen_pc92`: `return $s . '^H99^'`
MAX_HOPS = 99  # DXProt.pm `check`: `$pc->[$i] =~ /^H\d\d?$/`
PC9X_TOLERANCE = 15 * 60  # DXProtHandle.pm `$pc9x_time_tolerance = 15*60`
SPOT_MAX_AGE = timedelta(hours=1)  # DXProt.pm `$pc11_max_age = 1*3600`
SPOT_MAX_AHEAD = timedelta(minutes=15)  # DXProtHandle.pm handle_11: `$d > $main::systime + 900`
PC19_VERSION = 5455  # DXProt.pm `$pc19_version = 5455`: the version DXSpider shows for unknown nodes

_FRAME_HEAD = re.compile(r"PC(\d\d)")
_HOPS = re.compile(r"H(\d{1,2})")
_HOPS_AT_END = re.compile(r"\^H(\d+)(\^?~?)?$")
_DATE = re.compile(r"\s*\d+-\w\w\w-[12][90]\d\d")  # DXProt.pm check 'd'


@dataclass(frozen=True, slots=True)
class Frame:
    """One PC sentence: its number, its fields after `PCnn` (trailing `~` and empty fields dropped,
    as Perl's `split /\\^/` does) and its hop count when the last field is `H<n>`."""

    number: int
    fields: tuple[str, ...]
    hops: int | None
    line: str

    def field(self, index: int) -> str:
        """Field `index` (1 is the first after `PCnn`, as in DXSpider's `$pc->[1]`), '' when absent."""
        return self.fields[index - 1] if 0 < index <= len(self.fields) else ""


def parse_frame(line: str | bytes) -> Frame | None:
    """A PC sentence split into fields, or None for anything else (never raises)."""
    if len(line) > MAX_LINE:
        return None
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    text = without_control(text).strip()
    head = _FRAME_HEAD.match(text)
    if head is None or int(head[1]) < 10:
        return None
    parts = text.split("^")
    if parts[0] != head[0]:
        return None
    fields = parts[1:]
    while fields and fields[-1] in ("", "~"):
        fields.pop()
    hops_match = _HOPS.fullmatch(fields[-1]) if fields else None
    hops = int(hops_match[1]) if hops_match else None
    return Frame(int(head[1]), tuple(fields), hops, text)


def decrement_hops(line: str) -> str | None:
    """The sentence as passed on: `H<n>` lowered by one, None when it drops below zero (DXProt.pm
    `normal`: `$hops--; return if $hops < 0;`). Sentences without a hop count pass unchanged."""
    m = _HOPS_AT_END.search(line)
    if m is None:
        return line
    hops = int(m[1]) - 1
    if hops < 0:
        return None
    return line[: m.start()] + f"^H{hops}{m[2] or ''}"


# --------------------------------------------------------------------------------------------------
# Typed messages


@dataclass(frozen=True, slots=True)
class SpotMessage:
    """PC11 / PC61: `spot.origin` is the node the spot entered the network at."""

    number: int
    spot: Spot
    hops: int | None


@dataclass(frozen=True, slots=True)
class Init:
    """PC18: the peer's software string and protocol version; `pc9x` when it offers PC92/PC93."""

    software: str
    version: int | None
    pc9x: bool

    @property
    def spider(self) -> bool:
        return "DXSpider" in self.software


@dataclass(frozen=True, slots=True)
class InitDone:
    """PC20 (send your config) or PC22 (initialisation finished)."""

    number: int


@dataclass(frozen=True, slots=True)
class Ping:
    """PC51^to^from^flag: flag 1 asks, 0 answers."""

    to: str
    sender: str
    ask: bool


@dataclass(frozen=True, slots=True)
class RouteRecord:
    """PC92^node^time-id^sort^slots...^H99: routing (A add, D delete, C config, K keepalive, ...)."""

    node: str
    time_id: float
    sort: str
    slots: tuple[str, ...]
    hops: int | None


@dataclass(frozen=True, slots=True)
class AnnounceMessage:
    """PC12 or PC93 turned into the announcement users see; `talk_to` set for a PC93 talk."""

    number: int
    announce: Announce
    origin: str
    hops: int | None
    node: str = ""  # PC93: the node that generated it (for the time-id check)
    time_id: float | None = None
    talk_to: str | None = None


@dataclass(frozen=True, slots=True)
class WwvMessage:
    wwv: Wwv
    when: datetime
    origin: str
    hops: int | None


@dataclass(frozen=True, slots=True)
class WcyMessage:
    wcy: Wcy
    when: datetime
    origin: str
    hops: int | None


PcMessage = SpotMessage | Init | InitDone | Ping | RouteRecord | AnnounceMessage | WwvMessage | WcyMessage


def decode(frame: Frame) -> PcMessage | None:
    """The frames a spot-only node acts on, typed; None for other or malformed ones (never raises)."""
    try:
        handler = _DECODERS.get(frame.number)
        return handler(frame) if handler is not None else None
    except (ValueError, OverflowError, IndexError):
        return None


def _decode_spot(frame: Frame) -> SpotMessage | None:
    event = parse_line(frame.line)
    if not isinstance(event, DxSpot) or not is_cluster_call(event.spot.origin or ""):
        return None
    return SpotMessage(frame.number, event.spot, frame.hops)


def _decode_pc18(frame: Frame) -> Init:
    software = frame.field(1)
    version = frame.field(2).strip()
    return Init(software, int(version) if version.isdecimal() else None, "pc9x" in software.split())


def _decode_ping(frame: Frame) -> Ping | None:
    to, sender, flag = frame.field(1), frame.field(2), frame.field(3).strip()
    if not (is_cluster_call(to) and is_cluster_call(sender) and flag in ("0", "1")):
        return None
    return Ping(to, sender, flag == "1")


def _time_id(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 <= value < 86400 else None


def _decode_pc92(frame: Frame) -> RouteRecord | None:
    node, sort = frame.field(1), frame.field(3)
    t = _time_id(frame.field(2))
    if not is_cluster_call(node) or t is None or not re.fullmatch(r"[A-Z]", sort):
        return None
    slots = frame.fields[3:-1] if frame.hops is not None else frame.fields[3:]
    return RouteRecord(node, t, sort, tuple(slots), frame.hops)


def _decode_pc12(frame: Frame) -> AnnounceMessage | None:
    """PC12^from^to-node^text^sysop-flag^origin^wx-flag^H: target as DXProt.pm `send_announce`."""
    sender, to_node, text = frame.field(1), frame.field(2), frame.field(3).strip()
    sysop, origin, wx = frame.field(4), frame.field(5), frame.field(6)
    if not (is_cluster_call(sender) and is_cluster_call(origin)):
        return None
    if wx == "1":
        target = "WX"
    elif sysop == "*":
        target = "SYSOP"
    elif to_node not in ("*", "") and not is_cluster_call(to_node):
        target = to_node.split(".")[0]
    else:
        target = "ALL"
    return AnnounceMessage(12, Announce(sender, target, text), origin, frame.hops)


def _decode_pc93(frame: Frame) -> AnnounceMessage | None:
    """PC93^node^time-id^to^from^via^text[^onode]^H: `to` `*`/SYSOP/WX is an announcement, a
    callsign is a talk (DXProtHandle.pm handle_93)."""
    node, to, sender = frame.field(1), frame.field(3).upper(), frame.field(4).upper()
    via, text = frame.field(5).upper(), frame.field(6)
    t = _time_id(frame.field(2))
    body = frame.fields[:-1] if frame.hops is not None else frame.fields
    origin = body[6].upper() if len(body) > 6 else node
    if not (is_cluster_call(node) and is_cluster_call(sender)) or t is None:
        return None
    talk_to = None
    if to == "*":
        target = "LOCAL" if via == "LOCAL" else "ALL"
    elif to in ("SYSOP", "WX"):
        target = to
    elif is_cluster_call(to):
        target, talk_to = to, to
    else:
        return None  # a chat group: not relayed by a spot-only node
    return AnnounceMessage(93, Announce(sender, target, text.strip()), origin, frame.hops,
                           node=node, time_id=t, talk_to=talk_to)


def _number(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdecimal() else None


def _bulletin_time(date: str, hour: str) -> datetime | None:
    """DXSpider dates a WWV/WCY at 18 minutes past its hour (`sprintf("%02d18Z", $pc->[2])`)."""
    parts = date.strip().split("-")
    h = _number(hour)
    if not _DATE.fullmatch(date) or h is None or h > 23:
        return None
    month = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
    if parts[1].upper() not in month:
        return None
    return datetime(int(parts[2]), month.index(parts[1].upper()) + 1, int(parts[0]), h, 18, tzinfo=UTC)


def _decode_pc23(frame: Frame) -> WwvMessage | None:
    """PC23^date^hour^sfi^a^k^forecast^logger^origin^H (cmd/wwv.pl builds it in this order)."""
    when = _bulletin_time(frame.field(1), frame.field(2))
    logger, origin = frame.field(7).strip(), frame.field(8).strip()
    if when is None or not (is_cluster_call(logger) and is_cluster_call(origin)):
        return None
    wwv = Wwv(logger, when.hour, _number(frame.field(3)), _number(frame.field(4)), _number(frame.field(5)),
              frame.field(6).strip())
    return WwvMessage(wwv, when, origin, frame.hops)


def _decode_pc73(frame: Frame) -> WcyMessage | None:
    """PC73^date^hour^sfi^a^k^expk^r^sa^gmf^au^logger^origin^H (DXProtHandle.pm handle_73)."""
    when = _bulletin_time(frame.field(1), frame.field(2))
    f = [frame.field(i).strip() for i in range(3, 13)]
    logger, origin = f[8], f[9]
    if when is None or not (is_cluster_call(logger) and is_cluster_call(origin)):
        return None
    wcy = Wcy(logger, when.hour, k=_number(f[2]), expk=_number(f[3]), a=_number(f[1]), r=_number(f[4]),
              sfi=_number(f[0]), sa=f[5] or None, gmf=f[6] or None, au=f[7] or None)
    return WcyMessage(wcy, when, origin, frame.hops)


_DECODERS = {
    11: _decode_spot, 61: _decode_spot, 12: _decode_pc12, 18: _decode_pc18,
    20: lambda f: InitDone(20), 22: lambda f: InitDone(22), 23: _decode_pc23, 51: _decode_ping,
    73: _decode_pc73, 92: _decode_pc92, 93: _decode_pc93,
}


def spot_time_ok(when: datetime, now: datetime) -> bool:
    """DXSpider's window for a real-time spot: not older than an hour, not more than 15 minutes ahead
    (DXProtHandle.pm handle_11: `$d < $main::systime - $pc11_max_age || $d > $main::systime + 900`)."""
    return now - SPOT_MAX_AGE <= when <= now + SPOT_MAX_AHEAD


def feed_spot_ok(spot: Spot, line: str, now: datetime) -> bool:
    """What feeds and links may bring in: a frequency in an amateur band (the same check as a user's
    `dx`), and for dated lines (PC11, PC61, CC11) DXSpider's window of an hour back to 15 minutes ahead
    (DXProtHandle.pm handle_11)."""
    if band_for_mhz(spot.freq / 1000.0) is None:
        return False
    return line[:4].upper() not in ("PC11", "PC61", "CC11") or spot_time_ok(spot.time, now)


def time_id_ok(t: float, now: datetime) -> bool:
    """A PC92/PC93 time id (seconds since midnight UTC) within 15 minutes of now, across midnight too
    (DXProtHandle.pm check_pc9x_t: `$diff < $pc9x_time_tolerance || 86400 - $diff < ...`)."""
    diff = abs(seconds_of_day(now) - t)
    return diff < PC9X_TOLERANCE or 86400 - diff < PC9X_TOLERANCE


def seconds_of_day(now: datetime) -> int:
    now = now.astimezone(UTC)
    return now.hour * 3600 + now.minute * 60 + now.second


# --------------------------------------------------------------------------------------------------
# Formatting what we send


def _text(text: str) -> str:
    """A free-text field: no control characters, `^` sent as `~`, an empty field as one space."""
    return without_control(text, " ").replace("^", "~").strip() or " "


def pc11(spot: Spot, origin: str, hops: int = PC11_HOPS) -> str:
    """DXProtout.pm pc11: `PC11^%.1f^$dxcall^%s^%s^$text^$mycall^$main::mycall^$hops^~`."""
    when = spot.time.astimezone(UTC)
    return (f"PC11^{spot.freq:.1f}^{spot.dx}^{cluster_date(when)}^{when:%H%M}Z^{_text(spot.comment)}"
            f"^{spot.spotter}^{origin}^H{hops}^~")


def pc61(spot: Spot, origin: str, ip: str, hops: int = DEFAULT_HOPS) -> str:
    """DXProtout.pm pc61: `PC61^%.1f^$dxcall^%s^%s^$text^$mycall^$main::mycall^$ipaddr^$hops^~`.
    IPv6 colons travel as commas (DXProtHandle.pm: `$ip =~ s/,/:/g`)."""
    when = spot.time.astimezone(UTC)
    return (f"PC61^{spot.freq:.1f}^{spot.dx}^{cluster_date(when)}^{when:%H%M}Z^{_text(spot.comment)}"
            f"^{spot.spotter}^{origin}^{ip.replace(':', ',')}^H{hops}^~")


def pc12(sender: str, text: str, origin: str, *, to_node: str = "*", sysop: bool = False,
         wx: bool = False, hops: int = DEFAULT_HOPS) -> str:
    """DXProtout.pm pc12: `PC12^$call^$tonode^$text^$sysop^$origin^$wx^$hops^~`."""
    return f"PC12^{sender}^{to_node}^{_text(text)}^{'*' if sysop else ' '}^{origin}^{int(wx)}^H{hops}^~"


def pc19(node: str, version: int = PC19_VERSION, hops: int = 25) -> str:
    """DXProtout.pm pc19, one node: `^$here^$call^$conf^$version` then `^H<hops>^`."""
    return f"PC19^1^{node}^0^{version}^H{hops}^"


def pc20() -> str:
    return "PC20^"  # DXProtout.pm: `return 'PC20^';`


def pc22() -> str:
    return "PC22^"  # DXProtout.pm: `return 'PC22^';`


def pc23(wwv: Wwv, when: datetime, origin: str, hops: int = DEFAULT_HOPS) -> str:
    """cmd/wwv.pl: `('PC23',$today,$hour,$args{sf},$args{a},$args{k},$forecast, $self->call, $main::mycall, 'H99')`."""
    def n(v: int | None) -> str:
        return "" if v is None else str(v)
    return (f"PC23^{cluster_date(when)}^{when.hour}^{n(wwv.sfi)}^{n(wwv.a)}^{n(wwv.k)}^{_text(wwv.text)}"
            f"^{wwv.sender}^{origin}^H{hops}^~")


def pc51(to: str, sender: str, ask: bool) -> str:
    """DXProtout.pm pc51: `PC51^$to^$from^$val^`."""
    return f"PC51^{to}^{sender}^{int(ask)}^"


def time_id(now: datetime) -> str:
    """Seconds since midnight UTC: the PC92/PC93 time id (see TimeIds for repeats within a second)."""
    return str(seconds_of_day(now))


class TimeIds:
    """DXProtHandle.pm gen_pc9x_t: a node's PC92/PC93 ids must rise, so a second sentence within the
    same second gets `.01`, `.02`, ... (`sprintf "%d.%02d"`); the receiver drops an id equal to the
    last one it saw from that node (check_pc9x_t: `dup id on $t == lastid $lastid, ignored`)."""

    def __init__(self) -> None:
        self._second = -1
        self._repeats = 0

    def next(self, now: datetime) -> str:
        second = seconds_of_day(now)
        if second != self._second:
            self._second, self._repeats = second, 0
            return str(second)
        self._repeats += 1
        return f"{second}.{self._repeats:02d}"


def pc92_node_slot(call: str, version: int | None = None, build: str | None = None) -> str:
    """DXProtout.pm _encode_pc92_call: flag digit (4 node | 1 here) + call [+ :version[:build]]."""
    out = f"5{call}"
    if version is not None:
        out += f":{version}"
        if build is not None:
            out += f":{build}"
    return out


def pc92a(node: str, now: datetime, peer: str, t: str | None = None) -> str:
    """The A record a DXSpider outbound node sends first (DXProt.pm send_local_config with pc9x:
    `pc92a($main::routeroot, $node)`; our own slot left empty, `$pc9x_nodupe_first_slot = 1`)."""
    return f"PC92^{node}^{t or time_id(now)}^A^^{pc92_node_slot(peer)}^H{PC9X_HOPS}^"


def pc92k(node: str, now: datetime, users: int, version: int = PC19_VERSION, build: str = "0",
          t: str | None = None) -> str:
    """Keepalive (DXProtout.pm pc92k): `K^<slot>:<build>^<nodes>^<users>^H99^`."""
    return (f"PC92^{node}^{t or time_id(now)}^K^{pc92_node_slot(node, version, build)}^0^{users}"
            f"^H{PC9X_HOPS}^")


def pc92c(node: str, now: datetime, users: Sequence[str] = (), version: int = PC19_VERSION,
          t: str | None = None) -> str:
    """Config (DXProtout.pm pc92c, `_gen_pc92('C', 1, @_)`): this node with its version, then its users
    (flag 1: here, not a node); a spot-only node has no dependent nodes."""
    slots = "".join(f"^1{user}" for user in users)
    return f"PC92^{node}^{t or time_id(now)}^C^{pc92_node_slot(node, version)}{slots}^H{PC9X_HOPS}^"


def pc92_users(node: str, now: datetime, sort: str, users: Sequence[str], t: str | None = None) -> str:
    """A (users arrived) or D (users left): our own slot left empty (`$pc9x_nodupe_first_slot = 1`),
    then the users (DXProtout.pm pc92a / pc92d)."""
    slots = "".join(f"^1{user}" for user in users)
    return f"PC92^{node}^{t or time_id(now)}^{sort}^{slots}^H{PC9X_HOPS}^"


def pc93(node: str, now: datetime, to: str, sender: str, text: str, via: str = "*",
         origin: str | None = None, t: str | None = None) -> str:
    """DXProtout.pm pc93: `PC93^$main::mycall^<t>^$to^$from^$via^$line[^$origin]^H99^`."""
    line = f"PC93^{node}^{t or time_id(now)}^{to}^{sender}^{via}^{_text(text)}"
    if origin:
        line += f"^{origin}"
    return line + f"^H{PC9X_HOPS}^"


def pc73(wcy: Wcy, when: datetime, origin: str, hops: int = DEFAULT_HOPS) -> str:
    """PC73^date^hour^sfi^a^k^expk^r^sa^gmf^au^logger^origin^H (the order handle_73 reads)."""
    def n(v: int | str | None) -> str:
        return "" if v is None else str(v)
    return (f"PC73^{cluster_date(when)}^{when.hour}^{n(wcy.sfi)}^{n(wcy.a)}^{n(wcy.k)}^{n(wcy.expk)}"
            f"^{n(wcy.r)}^{n(wcy.sa)}^{n(wcy.gmf)}^{n(wcy.au)}^{wcy.sender}^{origin}^H{hops}^~")
