"""The user command table of the cluster port: what each DXSpider command does here and says back.

Replies use DXSpider's wording (its `perl/Messages` English texts and `cmd/*.pl`, quoted next to each
handler), so loggers that look for them (and users who know them) are not surprised. A handler takes the
session and the words after the command and returns events; the session loop (session.py) handles
login, framing, prompts and the error count.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from hamsrv.firehose.bulletins import Talk
from hamsrv.firehose.cluster import Announce, cluster_date
from hamsrv.firehose.events import Event, Post, Publish, Send, ShowBulletins, ShowDx, ShowUsers
from hamsrv.firehose.lines import MAX_COMMENT
from hamsrv.firehose.modes import SKIMMER_ALL, SKIMMER_WORD_KIND, SKIMMER_WORDS
from hamsrv.firehose.spotfilter import FILTER_SLOTS, FilterError, SpotRule, UserFilter, parse_expression
from hamsrv.model import BAND_NAMES, Spot, band_for_mhz, normalize_call, valid_khz

if TYPE_CHECKING:
    from hamsrv.firehose.session import ClusterSession

SHOW_DX_DEFAULT = 10  # DXSpider Spot.pm $defaultspots
SHOW_DX_MAX = 100  # DXSpider Spot.pm $maxspots
SHOW_ANN_DEFAULT = 20  # cmd/show/announce.pl: `$to = 20 unless $to;`
SHOW_WWV_DEFAULT = 5  # cmd/show/wwv.pl: `$to = 5 unless $to;`
MAX_TEXT = 200  # announcement and talk text
SELF_SPOT_MIN_KHZ = 1_240_000.0  # Spot.pm `our $minselfspotqrg = 1240000;`
WIDTHS = (80, 250)

_NUMBER = re.compile(r"\d+(?:\.\d*)?")
_QRA = re.compile(r"[A-R]{2}\d{2}(?:[A-X]{2}(?:\d{2})?)?", re.IGNORECASE)

Handler = Callable[["ClusterSession", str], list[Event]]


def reply(*lines: str) -> Send:
    return Send("".join(line + "\r\n" for line in lines).encode("utf-8", "replace"))


# ---- spotting ---------------------------------------------------------------------------------------


def frequency_khz(text: str) -> float | None:
    """kHz from a DX command word; below 1800 it is taken as MHz when that lands in a band (DXSpider)."""
    if not _NUMBER.fullmatch(text):
        return None
    value = valid_khz(float(text))
    if value is None:
        return None
    if value < 1800 and band_for_mhz(value) is not None:
        value *= 1000.0
    return round(value, 1)


def dx(s: ClusterSession, args: str) -> list[Event]:
    usage = "(usage: DX <kHz> <call> [comment])"
    words = args.split(maxsplit=2)
    if len(words) < 2:
        return [reply(f"*** error: need a frequency and a callsign {usage}")]
    freq, call = frequency_khz(words[0]), words[1]
    if freq is None:
        freq, call = frequency_khz(words[1]), words[0]
    if freq is None:
        return [reply(f"*** error: no frequency in {args[:40]!r} {usage}")]
    dx_call = normalize_call(call)
    if dx_call is None:
        return [reply(f"*** error: {call[:20]!r} is not a valid callsign {usage}")]
    band = band_for_mhz(freq / 1000.0)
    if band is None:
        return [reply(f"*** error: frequency {freq:.1f} kHz is not in an amateur band {usage}")]
    comment = words[2][:MAX_COMMENT].strip() if len(words) > 2 else ""
    spot = Spot(spotter=s.call, freq=freq, dx=dx_call, comment=comment,
                time=s.clock().replace(microsecond=0), band=band, source="user", origin=s.node_call,
                spotter_grid=s.qra[:4] if s.qra else None, verified=s.verified)
    if _base(dx_call) == _base(s.call) and freq < SELF_SPOT_MIN_KHZ:
        # cmd/dx.pl: `trying to self spot below ${Spot::minselfspotqrg}KHz ..., not passed on to cluster`
        # and `if ($freq =~ /^69/ || $localonly) { $self->dx_spot(undef, undef, @spot); return (1); }`:
        # the spotter alone sees it; it is neither stored nor passed on
        return [reply(s.format_spot(spot))]
    return [Publish(spot, by_user=True)]


def _base(call: str) -> str:
    """The call without SSID or portable parts (`G4ABC-2`, `G4ABC/P` -> `G4ABC`)."""
    parts = call.split("-")[0].split("/")
    return max(parts, key=lambda p: (any(c.isdigit() for c in p) and any(c.isalpha() for c in p), len(p)))


# ---- sh/dx ------------------------------------------------------------------------------------------


def show_dx(s: ClusterSession, args: str, real: bool = False) -> list[Event]:
    """cmd/show/dx.pl: `[n|from-to]`, `day N[-M]`, `exact`, `real`, filter words (`by`, `info`, `on`,
    `call_zone`, ... with and/or/not), and one bare word taken as a call prefix."""
    words = args.split()
    count, prefix, exact, days = SHOW_DX_DEFAULT, "", False, None
    rest: list[str] = []
    i = 0
    while i < len(words):
        word, low = words[i], words[i].lower()
        if word.isdecimal() and not rest and count == SHOW_DX_DEFAULT:
            count = max(1, min(int(word), SHOW_DX_MAX))
        elif re.fullmatch(r"\d+[-/]\d+", word):
            count = max(1, min(int(re.split(r"[-/]", word)[1]), SHOW_DX_MAX))
        elif low == "day" and i + 1 < len(words):
            lo, _, hi = words[i + 1].replace("/", "-").partition("-")
            if not lo.isdecimal() or (hi and not hi.isdecimal()):
                raise FilterError("usage: SH/DX day <days back>[-<days back>]")
            days = (int(lo), int(hi or lo))
            i += 1
        elif low == "exact":
            exact = True
        elif low in ("rt", "real") or low.startswith("real"):
            real = True
        elif low in ("not", "and", "or", "(", ")"):
            rest.append(word)
        elif low in _FILTER_WORDS and i + 1 < len(words):
            rest += [word, words[i + 1]]
            i += 1
        elif not prefix and re.fullmatch(r"[A-Za-z0-9/*?-]{1,20}", word):
            prefix = word.upper()
        else:
            raise FilterError(f"cannot use {word[:20]!r} in SH/DX")
        i += 1
    predicate = parse_expression(" ".join(rest)) if rest else None
    pattern = None
    if prefix:
        text = re.escape(prefix).replace(r"\*", ".*").replace(r"\?", ".")
        pattern = re.compile(text + ("$" if exact else ""))
    now = s.clock()

    def matches(spot: Spot) -> bool:
        if pattern is not None and pattern.match(spot.dx) is None:
            return False
        if days is not None and not days[0] <= (now - spot.time) // timedelta(days=1) <= days[1]:
            return False
        return predicate is None or predicate(spot)

    return [ShowDx(count, matches, query=args, real=real)]


def show_fdx(s: ClusterSession, args: str) -> list[Event]:
    """cmd/Aliases: `'^sho?w?/fdx', 'show/dx real'`: the list in the `DX de` layout."""
    return show_dx(s, args, real=True)


_FILTER_WORDS = frozenset({"on", "freq", "call", "info", "spotter", "by", "dxcc", "call_dxcc", "by_dxcc",
                           "bydxcc", "origin", "call_itu", "itu", "call_zone", "zone", "cq", "bycq",
                           "byitu", "by_itu", "by_zone", "byzone", "call_state", "state", "bystate",
                           "by_state", "ip"})  # the list cmd/show/dx.pl passes to the filter parser


# ---- filters ----------------------------------------------------------------------------------------


def _set_rule(s: ClusterSession, kind: str, args: str) -> list[Event]:
    words = args.split(maxsplit=1)
    slot = 1
    if words and words[0].isdecimal():
        slot = int(words[0])
        if slot not in FILTER_SLOTS:
            raise FilterError("filter numbers run from 0 to 9")
        args = words[1] if len(words) > 1 else ""
    rule = SpotRule.parse(args)
    (s.filter.accept if kind == "accept" else s.filter.reject)[slot] = rule
    return [reply(f"{kind}/spots {slot} {rule}")]


def accept(s: ClusterSession, args: str) -> list[Event]:
    return _set_rule(s, "accept", args)


def reject(s: ClusterSession, args: str) -> list[Event]:
    return _set_rule(s, "reject", args)


def clear(s: ClusterSession, args: str) -> list[Event]:
    word = args.strip().lower()
    if word in ("", "all"):
        s.filter = UserFilter()
        return [reply("spot filter cleared: you get every spot")]
    if not word.isdecimal() or int(word) not in FILTER_SLOTS:
        raise FilterError("usage: CLEAR/SPOTS [0-9|all]")
    s.filter.accept.pop(int(word), None)
    s.filter.reject.pop(int(word), None)
    return [reply(f"spot filter {word} cleared")]


def cc_filter(s: ClusterSession, args: str) -> list[Event]:
    """CC-Cluster `SET/FILTER DXBM/PASS 20,15,10` mapped onto filter line 1."""
    words = args.split(maxsplit=1)
    kind = {"dxbm/pass": "accept", "dxbm/reject": "reject"}.get(words[0].lower() if words else "")
    if kind is None or len(words) < 2:
        raise FilterError("only SET/FILTER DXBM/PASS <bands> or DXBM/REJECT <bands> is supported; "
                          "ACCEPT/SPOTS offers more")
    bands = [_cc_band(b) for b in words[1].replace(" ", ",").split(",") if b]
    return _set_rule(s, kind, "1 on " + ",".join(bands))


def _cc_band(word: str) -> str:
    word = word.strip().lower()
    for name in (word, f"{word}m", f"{word}cm"):
        if name in BAND_NAMES:
            return name
    raise FilterError(f"unknown band {word!r} in SET/FILTER (use e.g. 20,15,10 or 70cm)")


def no_filter(s: ClusterSession, args: str) -> list[Event]:
    return clear(s, "all")


def show_filter(s: ClusterSession, args: str) -> list[Event]:
    extra = [f"skimmer spots: {s.skimmer_description()}"]
    return [reply(*s.filter.describe(), *extra)]


# ---- announcements, talk, bulletins -----------------------------------------------------------------


def announce(s: ClusterSession, args: str) -> list[Event]:
    """cmd/announce.pl: `announce <text>` stays on this node (LOCAL), `announce full <text>` goes to
    every node, `announce sysop <text>` to sysops. No text: `e9 => q{Need at least some text}`."""
    words = args.split(maxsplit=1)
    target, text = "LOCAL", args.strip()
    if words and words[0].lower() in ("full", "sysop", "local"):
        target = {"full": "ALL", "sysop": "SYSOP", "local": "LOCAL"}[words[0].lower()]
        text = words[1].strip() if len(words) > 1 else ""
    text = text[:MAX_TEXT]
    if not text:
        return [reply("Need at least some text")]
    return [Post(Announce(s.call, target, text))]


def wx(s: ClusterSession, args: str) -> list[Event]:
    """cmd/wx.pl: a weather announcement, shown as `WX de CALL: text`."""
    if not args.strip():
        return [reply("Need at least some text")]
    return [Post(Announce(s.call, "WX", args.strip()[:MAX_TEXT]))]


def talk(s: ClusterSession, args: str) -> list[Event]:
    """cmd/talk.pl: `talk <call> <text>`; `e8 => q{Need a callsign and some text}`,
    `e22 => q{$_[0] is not a callsign}` (the server answers `e7` when the call is not logged in)."""
    words = args.split(maxsplit=1)
    if len(words) < 2:
        return [reply("Need a callsign and some text")]
    to = words[0].upper().split(">")[0]
    if normalize_call(to.split("-")[0]) is None:
        return [reply(f"{to} is not a callsign")]
    return [Post(Talk(s.call, to, words[1].strip()[:MAX_TEXT]))]


def _count(args: str, default: int, most: int = 100) -> int:
    words = [w for w in args.split() if w.isdecimal()]
    return max(1, min(int(words[0]), most)) if words else default


def show_announce(s: ClusterSession, args: str) -> list[Event]:
    return [ShowBulletins("announce", _count(args, SHOW_ANN_DEFAULT))]


def show_wwv(s: ClusterSession, args: str) -> list[Event]:
    return [ShowBulletins("wwv", _count(args, SHOW_WWV_DEFAULT))]


def show_wcy(s: ClusterSession, args: str) -> list[Event]:
    return [ShowBulletins("wcy", _count(args, SHOW_WWV_DEFAULT))]


UserRow = tuple[str, datetime, str, str]  # call, logged in at, name, address


def format_users(kind: str, node_call: str, users: list[UserRow]) -> bytes:
    """`who` (cmd/who.pl: `sprintf "%10s $type $sort $t %-10.10s $ping $ip"` under `"  Callsign Type
    Started           Name     Ave RTT Link"`) and `sh/users` (cmd/show/users.pl: `Callsigns connected
    to <node>`, then five calls a line, `"%-12s %-12s %-12s %-12s %-12s"`)."""
    if kind == "who":
        lines = ["  Callsign Type      Started           Name     Ave RTT Link"]
        lines += [f"{call:>10} USER EXT  {cluster_date(t)} {t:%H%M}Z {name or ' ':<10.10}       {ip}"
                  for call, t, name, ip in users]
    else:
        calls = sorted({call for call, *_ in users})
        lines = [f"Callsigns connected to {node_call}"]
        lines += [" ".join(f"{c:<12}" for c in calls[i:i + 5]) for i in range(0, len(calls), 5)]
    return "".join(line.rstrip() + "\r\n" for line in lines).encode("utf-8", "replace")


def who(s: ClusterSession, args: str) -> list[Event]:
    return [ShowUsers("who")]


def show_users(s: ClusterSession, args: str) -> list[Event]:
    return [ShowUsers("users")]


# ---- user settings ----------------------------------------------------------------------------------


def _toggle(attr: str, on: bool, message: str) -> Handler:
    """A DXSpider set/unset pair whose reply names the user (`DX Spots enabled for G4ABC`)."""
    def handler(s: ClusterSession, args: str) -> list[Event]:
        setattr(s, attr, on)
        return [reply(message.format(call=s.call))]
    return handler


def set_skimmer(s: ClusterSession, args: str) -> list[Event]:
    """cmd/set/wantrbn.pl (set/skimmer): no argument wants every mode, else the modes named;
    `skims => q{RBN/Skimming set to $_[1] for $_[0]}`, `e39 => q{Sorry $_[0] is not a valid argument}`."""
    wanted: set[str] = set()
    for word in args.upper().split():
        m = SKIMMER_WORDS.match(word)
        if m is None:
            return [reply(f"Sorry {word} is not a valid argument")]
        kind = m[1]
        if kind == "NO":
            return no_skimmer(s, "")
        wanted.add(SKIMMER_WORD_KIND.get(kind, kind))
    s.skimmer = frozenset(wanted) if wanted else SKIMMER_ALL
    return [reply(f"RBN/Skimming set to {s.skimmer_description()} for {s.call}")]


def no_skimmer(s: ClusterSession, args: str) -> list[Event]:
    """set/noskimmer and unset/skimmer: `RBN/Skimming set to NONE for G4ABC`."""
    s.skimmer = frozenset()
    return [reply(f"RBN/Skimming set to NONE for {s.call}")]


def set_name(s: ClusterSession, args: str) -> list[Event]:
    """`name => q{Your name is now '$_[0]'}`, `namee1 => q{Please enter your name, set/name <your name>}`."""
    if not args.strip():
        return [reply("Please enter your name, set/name <your name>")]
    s.name = args.strip()[:30]
    return [reply(f"Your name is now '{s.name}'")]


def set_qth(s: ClusterSession, args: str) -> list[Event]:
    """`qth => q{Your QTH is now '$_[0]'}`, `qthe1 => q{Please enter your QTH, set/qth <your qth>}`."""
    if not args.strip():
        return [reply("Please enter your QTH, set/qth <your qth>")]
    s.qth = args.strip()[:60]
    return [reply(f"Your QTH is now '{s.qth}'")]


def set_qra(s: ClusterSession, args: str) -> list[Event]:
    """`qra => q{Your QRA Locator is now '$_[0]'}`, `qrae2 => q{Cannot recognise '$_[0]' as a QRA
    locator (eg JO02LQ)}`. The locator then fills the tail of the user's own spots."""
    text = args.strip()
    if not _QRA.fullmatch(text):
        return [reply(f"Cannot recognise '{text[:20]}' as a QRA locator (eg JO02LQ)")]
    s.qra = text.upper()
    return [reply(f"Your QRA Locator is now '{s.qra}'")]


def set_location(s: ClusterSession, args: str) -> list[Event]:
    """cmd/set/location.pl with `loc => q{Your Lat/Long is now '$_[0]'}`, `loce1 => q{Please enter
    your location,, set/location <latitude longitude>}`, `loce2 => q{Cannot recognise '$_[0]' as a
    Lat/Long (eg 52 20 N 0 16 E)}`, `loce3 => q{$_[0] is a QRA locator, please use: set/qra $_[0]}`."""
    text = " ".join(args.upper().split())
    if not text:
        return [reply("Please enter your location,, set/location <latitude longitude>")]
    if _QRA.fullmatch(text):
        return [reply(f"{text} is a QRA locator, please use: set/qra {text}")]
    if not re.fullmatch(r"\d{1,2} \d{1,2} [NS] \d{1,3} \d{1,2} [EW]", text):
        return [reply(f"Cannot recognise '{args.strip()[:30]}' as a Lat/Long (eg 52 20 N 0 16 E)")]
    s.location = text
    return [reply(f"Your Lat/Long is now '{text}'")]


def set_width(s: ClusterSession, args: str) -> list[Event]:
    if not args.isdecimal() or not WIDTHS[0] <= int(args) <= WIDTHS[1]:
        raise FilterError(f"usage: SET/WIDTH <{WIDTHS[0]}-{WIDTHS[1]}>")
    s.width = int(args)
    return [reply(f"width set to {s.width}")]


def set_page(s: ClusterSession, args: str) -> list[Event]:
    if not args.isdecimal():
        raise FilterError("usage: SET/PAGE <lines>")
    return [reply(f"page length {int(args)} (this node never pauses output)")]


def set_ve7cc(s: ClusterSession, args: str) -> list[Event]:
    """cmd/set/ve7cc.pl: `$self->ve7cc(1); push @out, $self->msg('ok');` (`Operation successful`):
    spots then arrive as `CC11^...` lines (VE7CC.pm dx_spot)."""
    s.ve7cc = True
    return [reply("Operation successful")]


def unset_ve7cc(s: ClusterSession, args: str) -> list[Event]:
    s.ve7cc = False
    return [reply("Operation successful")]


def help_text(s: ClusterSession, args: str) -> list[Event]:
    return [reply(*HELP_TEXT.splitlines())]


HELP_TEXT = """\
Commands (case-insensitive, DXSpider short forms work):
  DX <kHz> <call> [comment]       spot a station (DX <call> <kHz> works too)
  SH/DX [n] [<prefix>] [exact] [day N] [by <call>] [info <text>] [on <band>[/mode]] [...]
  SH/FDX [n] ...                  the same in the DX de layout
  ACCEPT/SPOTS [0-9] <filter>     e.g. on hf/cw and not by_zone 14,15 (and, or, not, brackets;
  REJECT/SPOTS [0-9] <filter>       call, by, info, origin, call_dxcc, by_dxcc, call_zone, by_zone)
  CLEAR/SPOTS [0-9|all]           remove filter lines; SH/FILTER shows them
  SET/FILTER DXBM/PASS 20,15,10   CC-Cluster style band filter; SET/NOFILTER clears it
  SET/SKIMMER [CW|RTTY|FT|BEACON|PSK]  receive skimmer (RBN) spots (default: off); SET/NOSKIMMER
  ANNOUNCE [FULL] <text>, TALK <call> <text>, WX <text>, SH/ANN, SH/WWV, SH/WCY, WHO, SH/USERS
  SET/NAME, SET/QTH, SET/QRA, SET/LOCATION, SET/DXGRID, SET/DXCQ, SET/BEEP, SET/VE7CC, SET/NODX
  SET/ANNOUNCE, SET/WWV, SET/WCY, SET/TALK (and UNSET/...), SET/WIDTH <80-250>, SET/ECHO
  BYE                             disconnect"""


def _abbreviations(words: dict[str, int]) -> dict[str, str]:
    """DXSpider accepts any prefix of a command word down to a minimum length (sh/dx, acc/spot)."""
    return {full[:n]: full for full, least in words.items() for n in range(least, len(full) + 1)}


VERBS = _abbreviations({"show": 2, "set": 3, "unset": 3, "accept": 3, "reject": 3, "clear": 2})
NOUNS = _abbreviations({
    "dx": 2, "fdx": 2, "filter": 2, "nofilter": 3, "page": 2, "echo": 1, "width": 1, "skimmer": 2,
    "noskimmer": 3, "wantrbn": 5, "spots": 2, "name": 2, "qth": 2, "qra": 3, "location": 3, "nodx": 4,
    "dxgrid": 3, "dxcq": 4, "beep": 2, "ve7cc": 2, "announce": 2, "wwv": 2, "wcy": 2, "talk": 2,
    "users": 1})
# `sh/d` and `set/d` are the common short forms of sh/dx and set/dx
NOUNS["d"] = "dx"

COMMANDS: dict[tuple[str, str], Handler] = {
    ("show", "dx"): show_dx, ("show", "fdx"): show_fdx, ("show", "filter"): show_filter,
    ("show", "announce"): show_announce, ("show", "wwv"): show_wwv, ("show", "wcy"): show_wcy,
    ("show", "users"): show_users,
    ("accept", "spots"): accept, ("reject", "spots"): reject, ("clear", "spots"): clear,
    ("set", "filter"): cc_filter, ("set", "nofilter"): no_filter, ("unset", "filter"): no_filter,
    ("set", "page"): set_page, ("set", "width"): set_width,
    ("set", "echo"): _toggle("echo", True, "Echoing enabled"),
    ("unset", "echo"): _toggle("echo", False, "Echoing disabled"),
    ("set", "skimmer"): set_skimmer, ("set", "wantrbn"): set_skimmer,
    ("set", "noskimmer"): no_skimmer, ("unset", "skimmer"): no_skimmer, ("unset", "wantrbn"): no_skimmer,
    ("set", "name"): set_name, ("set", "qth"): set_qth, ("set", "qra"): set_qra,
    ("set", "location"): set_location,
    # cmd/set/dx.pl / unset/dx.pl (set/nodx is DXSpider's alias for unset/dx)
    ("set", "dx"): _toggle("want_dx", True, "DX Spots enabled for {call}"),
    ("unset", "dx"): _toggle("want_dx", False, "DX Spots disabled for {call}"),
    ("set", "nodx"): _toggle("want_dx", False, "DX Spots disabled for {call}"),
    ("set", "dxgrid"): _toggle("want_grid", True, "DX Grid enabled for {call}"),
    ("unset", "dxgrid"): _toggle("want_grid", False, "DX Grid disabled for {call}"),
    ("set", "dxcq"): _toggle("want_cq", True, "DX CQ Zones enabled for {call}"),
    ("unset", "dxcq"): _toggle("want_cq", False, "DX CQ Zones disabled for {call}"),
    ("set", "beep"): _toggle("beep", True, "Beeps are now on"),  # `beepon => q{Beeps are now on}`
    ("unset", "beep"): _toggle("beep", False, "Beeps are now off"),
    ("set", "ve7cc"): set_ve7cc, ("unset", "ve7cc"): unset_ve7cc,
    ("set", "announce"): _toggle("want_ann", True, "Announces enabled for {call}"),
    ("unset", "announce"): _toggle("want_ann", False, "Announces disabled for {call}"),
    ("set", "wwv"): _toggle("want_wwv", True, "WWV enabled for {call}"),
    ("unset", "wwv"): _toggle("want_wwv", False, "WWV disabled {call}"),  # sic, DXSpider `wwvu`
    ("set", "wcy"): _toggle("want_wcy", True, "WCY enabled for {call}"),
    ("unset", "wcy"): _toggle("want_wcy", False, "WCY disabled for {call}"),
    ("set", "talk"): _toggle("want_talk", True, "Talk enabled for {call}"),
    ("unset", "talk"): _toggle("want_talk", False, "Talk disabled for {call}"),
}
# single words
WORDS: dict[str, Handler] = {
    "dx": dx, "help": help_text, "h": help_text, "?": help_text, "announce": announce, "ann": announce,
    "talk": talk, "t": talk, "wx": wx, "who": who, "w": who,
}
