"""One DX-cluster telnet connection as a sans-I/O state machine (FACTS 2.3, 2.4).

Bytes go in through `receive_data`; what the server must do comes out as events (`Send`, `Publish`,
`ShowDx`, `LoggedIn`, `Disconnect`). No sockets, no trio and no clock of its own (the clock is injected), so
every behaviour is tested on plain bytes and the trio server in node.py stays thin.

A connection is either a *user* (logs in with a callsign, types DXSpider commands, receives the live
spot stream through `wants` + `spot_line`) or a *feed* (logged in as `CALL TOKEN`, or a peer from a
trusted address that starts pushing without logging in): it pushes raw `DX de`, PC11 and PC61 lines,
published with their original spotter (and origin node), and gets no prompts and no spots. A user on
a trusted address may push such lines too. PC11/PC61 are taken in only: this node relays to no one.
"""

from __future__ import annotations

import enum
import hmac
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hamsrv.firehose.bulletins import Posted, Talk
from hamsrv.firehose.cluster import MAX_LINE, Announce, DxSpot, Wwv, cluster_date, format_dx_line, parse_line
from hamsrv.firehose.ring import RingEntry
from hamsrv.model import (
    BAND_NAMES,
    BANDS,
    Spot,
    band_for_mhz,
    decode_text,
    normalize_call,
    valid_khz,
    without_control,
)

DEFAULT_MAX_LINE = MAX_LINE  # the one line limit of the cluster protocol (cluster.MAX_LINE)
DEFAULT_WIDTH = 80  # AK1A line width (FACTS 2.1)
MAX_WIDTH = 250
SHOW_DX_DEFAULT = 10  # DXSpider Spot.pm $defaultspots
SHOW_DX_MAX = 100  # DXSpider Spot.pm $maxspots
MAX_COMMENT = 60  # user spot comments are cut here; an 80-column line shows only 30 characters
MAX_LOGIN_ATTEMPTS = 5  # then the connection is closed: a bot is not going to type a callsign
CRLF = "\r\n"

_SSID = re.compile(r"-\d{1,2}$")  # login calls may carry an SSID (G0ABC-2); a DX call does not
_NUMBER = re.compile(r"\d+(?:\.\d*)?")


def login_call(text: str) -> str | None:
    """The upper-cased login callsign (SSID allowed), or None when it cannot be one."""
    base = normalize_call(_SSID.sub("", text))
    return None if base is None else text.strip().upper()


# --------------------------------------------------------------------------------------------------
# Line framing: telnet IAC dropped, CR / LF / CRLF, bounded lines


_IAC, _SB, _SE = 255, 250, 240
_OPTION_VERBS = frozenset((251, 252, 253, 254))  # WILL WONT DO DONT take one option byte
_EOL = re.compile(rb"\r\n|\r|\n")


class _Telnet(enum.Enum):
    DATA = 0
    COMMAND = 1  # after IAC
    OPTION = 2  # after IAC WILL/WONT/DO/DONT
    SUB = 3  # inside IAC SB ... IAC SE
    SUB_IAC = 4


def clean_text(raw: bytes) -> str:
    """Decode a line as a terminal would show it: backspace/DEL applied, other control bytes dropped."""
    text = decode_text(raw).replace("\t", " ")
    if "\x08" in text or "\x7f" in text:
        kept: list[str] = []
        for ch in text:
            if ch in "\x08\x7f":
                if kept:
                    kept.pop()
            else:
                kept.append(ch)
        text = "".join(kept)
    return without_control(text)


class LineReader:
    """Splits a telnet byte stream into text lines.

    Telnet negotiation is dropped (we never negotiate, so clients stay in their default line mode);
    a line longer than `max_line` bytes is discarded and reported once as None, so memory per
    connection is bounded no matter what a peer sends.
    """

    def __init__(self, max_line: int = DEFAULT_MAX_LINE):
        if max_line < 1:
            raise ValueError("max_line must be positive")
        self.max_line = max_line
        self._buf = bytearray()
        self._telnet = _Telnet.DATA
        self._after_cr = False  # a CR ended the last chunk: a leading LF belongs to it
        self._overflow = False

    @property
    def partial(self) -> str:
        """The unterminated tail (prompts such as `login: ` arrive without a newline)."""
        return clean_text(bytes(self._buf))

    def feed(self, data: bytes) -> list[str | None]:
        """Complete lines found so far; None stands for a line dropped as too long."""
        if self._telnet is not _Telnet.DATA or _IAC in data:
            data = self._strip_telnet(data)
        if not data:
            return []
        if self._after_cr and data[0] == 0x0A:
            data = data[1:]
        self._after_cr = data.endswith(b"\r")
        *complete, tail = _EOL.split(data)
        lines = [self._finish(part) for part in complete]
        self._append(tail)
        return lines

    def _finish(self, part: bytes) -> str | None:
        too_long = self._overflow or len(self._buf) + len(part) > self.max_line
        raw = bytes(self._buf) + part
        self._buf.clear()
        self._overflow = False
        return None if too_long else clean_text(raw)

    def _append(self, part: bytes) -> None:
        if self._overflow:
            return
        if len(self._buf) + len(part) > self.max_line:
            self._overflow = True
            self._buf.clear()
        else:
            self._buf += part

    def _strip_telnet(self, data: bytes) -> bytes:
        out = bytearray()
        state = self._telnet
        for byte in data:
            if state is _Telnet.DATA:
                if byte == _IAC:
                    state = _Telnet.COMMAND
                else:
                    out.append(byte)
            elif state is _Telnet.COMMAND:
                if byte in _OPTION_VERBS:
                    state = _Telnet.OPTION
                elif byte == _SB:
                    state = _Telnet.SUB
                else:  # IAC IAC (a literal 0xFF, never valid text here) or a 2-byte command
                    state = _Telnet.DATA
            elif state is _Telnet.OPTION:
                state = _Telnet.DATA
            elif state is _Telnet.SUB:
                if byte == _IAC:
                    state = _Telnet.SUB_IAC
            else:  # SUB_IAC
                state = _Telnet.DATA if byte == _SE else _Telnet.SUB
        self._telnet = state
        return bytes(out)


# --------------------------------------------------------------------------------------------------
# Spot filters: DXSpider `accept/spots [n] on <band>[/mode],<lo>/<hi>` (FACTS 2.4)


def _band_range(name: str) -> tuple[float, float]:
    for band, lo, hi in BANDS:
        if band == name:
            return lo * 1000.0, hi * 1000.0
    raise KeyError(name)


BAND_GROUPS: dict[str, tuple[str, ...]] = {
    "lf": ("2190m", "630m", "560m"),
    "hf": ("160m", "80m", "60m", "40m", "30m", "20m", "17m", "15m", "12m", "10m"),
    "vhf": ("8m", "6m", "5m", "4m", "2m", "1.25m"),
    "uhf": ("70cm", "33cm", "23cm", "13cm"),
    "shf": ("9cm", "6cm", "3cm", "1.25cm", "6mm", "4mm", "2.5mm", "2mm", "1mm", "submm"),
}
_PHONE = frozenset({"SSB", "USB", "LSB", "AM", "FM"})
# Mode words a filter may use, each with the spot modes it stands for (None: every digital mode).
FILTER_MODES: dict[str, frozenset[str] | None] = {
    "cw": frozenset({"CW"}), "ssb": frozenset({"SSB", "USB", "LSB"}), "phone": _PHONE,
    "rtty": frozenset({"RTTY"}), "data": None, "digi": None,
    **{m.lower(): frozenset({m}) for m in ("FT8", "FT4", "PSK31", "PSK63", "JT65", "JT9", "JS8",
                                           "MSK144", "Q65", "FM", "AM", "SSTV", "OLIVIA")},
}
_NOT_DIGITAL = _PHONE | {"CW", "RTTY"}


def spot_mode(spot: Spot) -> str | None:
    """The spot's mode, else the first comment word when it names a mode (RBN: `CW 24 dB ...`)."""
    if spot.mode:
        return spot.mode.upper()
    words = spot.comment.split(maxsplit=1)
    if words and words[0].lower() in FILTER_MODES:
        return words[0].upper()
    return None


class FilterError(ValueError):
    """A filter the node cannot understand; the message is shown to the user as-is."""


@dataclass(frozen=True, slots=True)
class _Term:
    """One comma-separated item: frequency ranges in kHz, optionally limited to a mode."""

    text: str
    ranges: tuple[tuple[float, float], ...]
    mode: str | None

    def matches(self, spot: Spot) -> bool:
        if not any(lo <= spot.freq <= hi for lo, hi in self.ranges):
            return False
        if self.mode is None:
            return True
        mode = spot_mode(spot)
        wanted = FILTER_MODES[self.mode]
        if wanted is None:
            return mode is not None and mode not in _NOT_DIGITAL
        return mode in wanted


def _parse_term(item: str) -> _Term:
    text = item.strip().lower()
    left, _, right = text.partition("/")
    if _NUMBER.fullmatch(left) and _NUMBER.fullmatch(right):  # 14000/14350 (kHz)
        lo, hi = float(left), float(right)
        if lo > hi:
            raise FilterError(f"frequency range {item!r} runs backwards")
        return _Term(text, ((lo, hi),), None)
    if left in BAND_GROUPS:
        ranges = tuple(_band_range(b) for b in BAND_GROUPS[left])
    elif left in BAND_NAMES:
        ranges = (_band_range(left),)
    else:
        raise FilterError(f"unknown band {left!r} (use e.g. 20m, 70cm, hf, vhf or 14000/14350)")
    if right and right not in FILTER_MODES:
        raise FilterError(f"unknown mode {right!r} (known: {', '.join(sorted(FILTER_MODES))})")
    return _Term(text, ranges, right or None)


@dataclass(frozen=True, slots=True)
class SpotRule:
    """`on 20m,hf/cw,14000/14350`: matches a spot when any of its terms does."""

    terms: tuple[_Term, ...]

    @classmethod
    def parse(cls, text: str) -> SpotRule:
        """Parse `on <spec>[,<spec>...]` (`freq` is accepted for `on`, as in DXSpider)."""
        words = text.split()
        if len(words) < 2 or words[0].lower() not in ("on", "freq"):
            raise FilterError("only band/mode filters are supported: on <band>[/mode][,...], "
                              "e.g. on 20m or on hf/cw")
        items = [i for i in "".join(words[1:]).split(",") if i]
        if not items:
            raise FilterError("missing band after 'on'")
        return cls(tuple(_parse_term(i) for i in items))

    def __str__(self) -> str:
        return "on " + ",".join(t.text for t in self.terms)

    def matches(self, spot: Spot) -> bool:
        return any(t.matches(spot) for t in self.terms)


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


# --------------------------------------------------------------------------------------------------
# Events the server acts on


@dataclass(frozen=True, slots=True)
class Send:
    data: bytes


@dataclass(frozen=True, slots=True)
class Publish:
    """Put this spot on the hub; `by_user` says a logged-in user typed it (else a feed pushed it)."""

    spot: Spot
    by_user: bool


@dataclass(frozen=True, slots=True)
class ShowDx:
    """The server answers with `format_show_dx` of the newest `count` ring spots passing `matches`."""

    count: int
    matches: Callable[[Spot], bool]


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """Login finished: users start receiving spots from now on; feeds never do."""

    call: str
    feed: bool


@dataclass(frozen=True, slots=True)
class Disconnect:
    reason: str


Event = Send | Publish | ShowDx | LoggedIn | Disconnect

DUPLICATE_NOTICE = b"*** duplicate spot: already on the cluster, not sent again\r\n"


class State(enum.Enum):
    LOGIN = "login"
    USER = "user"
    FEED = "feed"
    CLOSED = "closed"


def _abbreviations(words: dict[str, int]) -> dict[str, str]:
    """DXSpider accepts any prefix of a command word down to a minimum length (sh/dx, acc/spot)."""
    return {full[:n]: full for full, least in words.items() for n in range(least, len(full) + 1)}


_VERBS = _abbreviations({"show": 2, "set": 3, "unset": 3, "accept": 3, "reject": 3, "clear": 2})
_NOUNS = _abbreviations({"dx": 1, "filter": 2, "nofilter": 3, "page": 2, "echo": 1, "width": 1,
                         "skimmer": 2, "wantrbn": 5, "spots": 2})
_BYE_WORDS = frozenset({"b", "bye", "q", "quit", "exit", "logout"})

HELP_TEXT = """\
Commands (case-insensitive, DXSpider short forms work):
  DX <kHz> <call> [comment]       spot a station (DX <call> <kHz> works too)
  SH/DX [n] [on <band>[/mode]] [<prefix>]   the last n spots, newest first (default 10, max 100)
  ACCEPT/SPOTS [0-9] on <spec>    only receive matching spots, spec: 20m, hf/cw, 14000/14350, ...
  REJECT/SPOTS [0-9] on <spec>    drop matching spots
  CLEAR/SPOTS [0-9|all]           remove filter lines (all when no number is given)
  SET/FILTER DXBM/PASS|REJECT 20,15,10   CC-Cluster style band filter; SET/NOFILTER clears it
  SH/FILTER                       show your filter
  SET/SKIMMER, UNSET/SKIMMER      receive skimmer (RBN) spots or not (default: on)
  SET/WIDTH <80-250>, SET/PAGE <n>, SET/ECHO, UNSET/ECHO
  BYE                             disconnect"""


class ClusterSession:
    """The protocol state of one cluster connection (see the module docstring)."""

    def __init__(self, node_call: str = "HAMSRV", *, trusted_feed: bool = False,
                 feed_tokens: Collection[str] = (), clock: Callable[[], datetime] | None = None,
                 max_line: int = DEFAULT_MAX_LINE, max_login_attempts: int = MAX_LOGIN_ATTEMPTS):
        """`trusted_feed`: the peer's address may push raw spot lines, before or after logging in;
        `feed_tokens`: answering `login:` with `CALL TOKEN` turns any peer into a feed."""
        self.node_call = node_call.upper()
        self.trusted_feed = trusted_feed
        self.feed_tokens = tuple(feed_tokens)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.max_login_attempts = max_login_attempts
        self.state = State.LOGIN
        self.call = ""
        self.width = DEFAULT_WIDTH
        self.page = 0
        self.echo = False
        self.skimmer = True
        self.filter = UserFilter()
        self.want_ann = self.want_wwv = self.want_wcy = self.want_talk = True
        self.feed_lines_ignored = 0  # feed lines that were not spots (announcements, junk)
        self._login_attempts = 0
        self._lines = LineReader(max_line)

    # ---- input

    def start(self) -> list[Event]:
        """What to send as soon as the connection is up: the greeting and the `login: ` prompt."""
        greeting = (f"Hello, this is {self.node_call}, a DX cluster node running hamsrv.{CRLF}"
                    f"Please enter your callsign.{CRLF}{CRLF}login: ")
        return [Send(greeting.encode())]

    def receive_data(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        for line in self._lines.feed(data):
            if self.state is State.CLOSED:
                break
            if line is None:
                if self.state is not State.FEED:
                    events.append(self._reply(f"*** error: line too long (max {self._lines.max_line} "
                                              "characters), ignored"))
                else:
                    self.feed_lines_ignored += 1
                continue
            events += self._handle_line(line.strip())
        return events

    def _handle_line(self, line: str) -> list[Event]:
        if self.state is State.LOGIN:
            return self._login(line)
        if self.state is State.FEED:
            return self._feed_line(line)
        return self._command(line)

    # ---- login

    def _login(self, line: str) -> list[Event]:
        if self.trusted_feed and self._is_spot_line(line):
            self.state, self.call = State.FEED, ""
            return [LoggedIn("", feed=True), *self._feed_line(line)]
        if not line:
            return [Send(b"login: ")]
        words = line.split()
        call = login_call(words[0])
        is_feed = len(words) == 2 and self._token_ok(words[1])
        if call is not None and (len(words) == 1 or is_feed):
            self.call = call
            if is_feed:
                self.state = State.FEED
                return [LoggedIn(call, feed=True), Send(f"Hello {call}, feed mode: send DX de, "
                                                        f"PC11 or PC61 lines.{CRLF}".encode())]
            self.state = State.USER
            welcome = (f"Hello {call}, this is {self.node_call} running hamsrv.{CRLF}"
                       f"Type HELP for commands, BYE to leave.{CRLF}")
            return [LoggedIn(call, feed=False), Send(welcome.encode()), Send(self.prompt())]
        self._login_attempts += 1
        if self._login_attempts >= self.max_login_attempts:
            return self._close("*** too many invalid logins, goodbye", "invalid login")
        # never echo a second word back: it may be a mistyped feed token
        problem = f"{words[0][:20]!r} is not a valid callsign" if len(words) == 1 else "invalid login"
        return [Send(f"*** {problem}, please try again{CRLF}login: ".encode())]

    def _token_ok(self, token: str) -> bool:
        return any(hmac.compare_digest(token.encode(), t.encode()) for t in self.feed_tokens)

    # ---- feed mode

    @staticmethod
    def _is_spot_line(line: str) -> bool:
        return line[:6].upper() == "DX DE " or line[:5] in ("PC11^", "PC61^")

    def _feed_line(self, line: str) -> list[Event]:
        if line.lower() in _BYE_WORDS:
            return self._close(f"73 {self.call or 'feed'}", "bye")
        event = parse_line(line, self.clock()) if line else None
        if not isinstance(event, DxSpot):
            self.feed_lines_ignored += bool(line)
            return []
        spot = event.spot
        spot.source = f"feed:{self.call}" if self.call else "feed"
        return [Publish(spot, by_user=False)]

    # ---- user commands

    def prompt(self) -> bytes:
        """DXSpider's `%C de %M %D %T dxspider >` with our name (FACTS 2.3)."""
        now = self.clock()
        return f"{self.call} de {self.node_call} {cluster_date(now)} {now:%H%M}Z hamsrv >{CRLF}".encode()

    def _reply(self, *lines: str) -> Send:
        return Send("".join(line + CRLF for line in lines).encode())

    def _close(self, goodbye: str, reason: str) -> list[Event]:
        self.state = State.CLOSED
        return [self._reply(goodbye), Disconnect(reason)]

    def _command(self, line: str) -> list[Event]:
        if self.trusted_feed and self._is_spot_line(line):  # a trusted peer may push while logged in
            return self._feed_line(line)
        events: list[Event] = [self._reply(line)] if self.echo and line else []
        if line:
            events += self._dispatch(line)
        if self.state is State.USER:
            events.append(Send(self.prompt()))
        return events

    def _dispatch(self, line: str) -> list[Event]:
        head, _, args = line.partition(" ")
        head, args = head.lower(), args.strip()
        if head in _BYE_WORDS:
            return self._close(f"73 {self.call}, thanks for using {self.node_call}", "bye")
        if head == "dx":
            return self._spot(args)
        if head in ("help", "h", "?"):
            return [self._reply(*HELP_TEXT.splitlines())]
        verb, _, noun = head.partition("/")
        handler = _HANDLERS.get((_VERBS.get(verb, ""), _NOUNS.get(noun, "")))
        if handler is None:
            return [self._reply(f"*** sorry, {line.split()[0][:30]!r} is not a command here; "
                                "type HELP for the list")]
        try:
            return handler(self, args)
        except FilterError as exc:
            return [self._reply(f"*** error: {exc}")]

    def _spot(self, args: str) -> list[Event]:
        usage = "(usage: DX <kHz> <call> [comment])"
        words = args.split(maxsplit=2)
        if len(words) < 2:
            return [self._reply(f"*** error: need a frequency and a callsign {usage}")]
        first, second = words[0], words[1]
        freq = _frequency_khz(first)
        call = second
        if freq is None:
            freq, call = _frequency_khz(second), first
        if freq is None:
            return [self._reply(f"*** error: no frequency in {args[:40]!r} {usage}")]
        dx = normalize_call(call)
        if dx is None:
            return [self._reply(f"*** error: {call[:20]!r} is not a valid callsign {usage}")]
        band = band_for_mhz(freq / 1000.0)
        if band is None:
            return [self._reply(f"*** error: frequency {freq:.1f} kHz is not in an amateur band {usage}")]
        comment = words[2][:MAX_COMMENT].strip() if len(words) > 2 else ""
        spot = Spot(spotter=self.call, freq=freq, dx=dx, comment=comment,
                    time=self.clock().replace(microsecond=0), band=band, source="user",
                    origin=self.node_call)
        return [Publish(spot, by_user=True)]

    def _show_dx(self, args: str) -> list[Event]:
        count, prefix = SHOW_DX_DEFAULT, ""
        words = args.split()
        rule: SpotRule | None = None
        if "on" in (w.lower() for w in words):
            at = [w.lower() for w in words].index("on")
            rule = SpotRule.parse(" ".join(words[at:at + 2]))
            words = words[:at] + words[at + 2:]
        for word in words:
            if word.isdecimal():
                count = max(1, min(int(word), SHOW_DX_MAX))
            elif word.isascii() and word.replace("/", "").isalnum() and not prefix:
                prefix = word.upper()
            else:
                raise FilterError(f"cannot use {word[:20]!r} in SH/DX (usage: SH/DX [n] [on <band>] "
                                  "[<call prefix>])")

        def matches(spot: Spot) -> bool:
            return spot.dx.startswith(prefix) and (rule is None or rule.matches(spot))

        return [ShowDx(count, matches)]

    def _set_rule(self, kind: str, args: str) -> list[Event]:
        words = args.split(maxsplit=1)
        slot = 1
        if words and words[0].isdecimal():
            slot = int(words[0])
            if slot not in FILTER_SLOTS:
                raise FilterError("filter numbers run from 0 to 9")
            args = words[1] if len(words) > 1 else ""
        rule = SpotRule.parse(args)
        (self.filter.accept if kind == "accept" else self.filter.reject)[slot] = rule
        return [self._reply(f"{kind}/spots {slot} {rule}")]

    def _accept(self, args: str) -> list[Event]:
        return self._set_rule("accept", args)

    def _reject(self, args: str) -> list[Event]:
        return self._set_rule("reject", args)

    def _clear(self, args: str) -> list[Event]:
        word = args.strip().lower()
        if word in ("", "all"):
            self.filter = UserFilter()
            return [self._reply("spot filter cleared: you get every spot")]
        if not word.isdecimal() or int(word) not in FILTER_SLOTS:
            raise FilterError("usage: CLEAR/SPOTS [0-9|all]")
        self.filter.accept.pop(int(word), None)
        self.filter.reject.pop(int(word), None)
        return [self._reply(f"spot filter {word} cleared")]

    def _cc_filter(self, args: str) -> list[Event]:
        """CC-Cluster `SET/FILTER DXBM/PASS 20,15,10` mapped onto filter line 1."""
        words = args.split(maxsplit=1)
        kind = {"dxbm/pass": "accept", "dxbm/reject": "reject"}.get(words[0].lower() if words else "")
        if kind is None or len(words) < 2:
            raise FilterError("only SET/FILTER DXBM/PASS <bands> or DXBM/REJECT <bands> is supported; "
                              "ACCEPT/SPOTS offers more")
        bands = [_cc_band(b) for b in words[1].replace(" ", ",").split(",") if b]
        return self._set_rule(kind, "1 on " + ",".join(bands))

    def _no_filter(self, args: str) -> list[Event]:
        return self._clear("all")

    def _show_filter(self, args: str) -> list[Event]:
        extra = [] if self.skimmer else ["skimmer spots: off"]
        return [self._reply(*self.filter.describe(), *extra)]

    def _set_page(self, args: str) -> list[Event]:
        if not args.isdecimal():
            raise FilterError("usage: SET/PAGE <lines>")
        self.page = int(args)
        return [self._reply(f"page length {self.page} (this node never pauses output)")]

    def _set_width(self, args: str) -> list[Event]:
        if not args.isdecimal() or not DEFAULT_WIDTH <= int(args) <= MAX_WIDTH:
            raise FilterError(f"usage: SET/WIDTH <{DEFAULT_WIDTH}-{MAX_WIDTH}>")
        self.width = int(args)
        return [self._reply(f"width set to {self.width}")]

    def _set_echo(self, args: str) -> list[Event]:
        self.echo = True
        return [self._reply("echo on")]

    def _unset_echo(self, args: str) -> list[Event]:
        self.echo = False
        return [self._reply("echo off")]

    def _set_skimmer(self, args: str) -> list[Event]:
        self.skimmer = True
        return [self._reply("skimmer spots on")]

    def _unset_skimmer(self, args: str) -> list[Event]:
        self.skimmer = False
        return [self._reply("skimmer spots off")]

    # ---- output

    def wants(self, entry: RingEntry) -> bool:
        """Whether this live spot goes to this connection (logged-in users only, after filters)."""
        spot = entry.spot
        return (self.state is State.USER and (self.skimmer or not _is_skimmer(spot))
                and self.filter.passes(spot))

    def wants_bulletin(self, posted: Posted) -> bool:
        """Announcements, WWV and WCY go to every user who has not switched them off (DXSpider
        `unset/announce`, `unset/wwv`, `unset/wcy`); SYSOP announcements to no one here (there are no
        sysops on the cluster port); a talk only to the user it is for."""
        if self.state is not State.USER:
            return False
        item = posted.item
        if isinstance(item, Talk):
            return self.want_talk and item.to in (self.call, self.call.split("-")[0])
        if isinstance(item, Announce):
            return self.want_ann and item.to != "SYSOP"
        return self.want_wwv if isinstance(item, Wwv) else self.want_wcy

    def spot_line(self, entry: RingEntry) -> bytes:
        """The AK1A `DX de` line with CRLF; the 80-column one is encoded once per ring entry."""
        if self.width != DEFAULT_WIDTH:
            return _encode_line(entry.spot, self.width)
        if entry.line is None:
            entry.line = _encode_line(entry.spot, DEFAULT_WIDTH)
        return entry.line

    def format_show_dx(self, entries: Iterable[RingEntry]) -> bytes:
        """SH/DX listing, newest first, in DXSpider's list format (Spot.pm `formatl`, FACTS 2.1)."""
        lines = [format_list_line(e.spot) for e in entries]
        return self._reply(*(lines or ["*** no spots match"])).data


def _encode_line(spot: Spot, width: int) -> bytes:
    return (format_dx_line(spot, width) + CRLF).encode("utf-8", "replace")


def format_list_line(spot: Spot) -> str:
    """`%8.1f  %-11s <date> <HHMMZ>  %-28.28s%7s>` with `<spotter` in the last field."""
    comment = without_control(spot.comment, " ")[:28]
    return (f"{spot.freq:8.1f}  {spot.dx:<11} {cluster_date(spot.time)} {spot.time:%H%M}Z  "
            f"{comment:<28}{'<' + spot.spotter:>7}>")


def _is_skimmer(spot: Spot) -> bool:
    return spot.skimmer or spot.spotter.endswith("-#")


def _frequency_khz(text: str) -> float | None:
    """kHz from a DX command word; below 1800 it is taken as MHz when that lands in a band (DXSpider)."""
    if not _NUMBER.fullmatch(text):
        return None
    value = valid_khz(float(text))
    if value is None:
        return None
    if value < 1800 and band_for_mhz(value) is not None:
        value *= 1000.0
    return round(value, 1)


def _cc_band(word: str) -> str:
    word = word.strip().lower()
    for name in (word, f"{word}m", f"{word}cm"):
        if name in BAND_NAMES:
            return name
    raise FilterError(f"unknown band {word!r} in SET/FILTER (use e.g. 20,15,10 or 70cm)")


_Handler = Callable[[ClusterSession, str], list[Event]]
_HANDLERS: dict[tuple[str, str], _Handler] = {
    ("show", "dx"): ClusterSession._show_dx,
    ("show", "filter"): ClusterSession._show_filter,
    ("accept", "spots"): ClusterSession._accept,
    ("reject", "spots"): ClusterSession._reject,
    ("clear", "spots"): ClusterSession._clear,
    ("set", "filter"): ClusterSession._cc_filter,
    ("set", "nofilter"): ClusterSession._no_filter,
    ("unset", "filter"): ClusterSession._no_filter,
    ("set", "page"): ClusterSession._set_page,
    ("set", "width"): ClusterSession._set_width,
    ("set", "echo"): ClusterSession._set_echo,
    ("unset", "echo"): ClusterSession._unset_echo,
    ("set", "skimmer"): ClusterSession._set_skimmer,
    ("unset", "skimmer"): ClusterSession._unset_skimmer,
    ("set", "wantrbn"): ClusterSession._set_skimmer,
    ("unset", "wantrbn"): ClusterSession._unset_skimmer,
}
