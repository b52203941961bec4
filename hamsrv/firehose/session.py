"""One DX-cluster telnet connection as a sans-I/O state machine (FACTS 2.3, 2.4).

Bytes go in through `receive_data`; what the server must do comes out as events (events.py). No
sockets, no trio and no clock of its own (the clock is injected), so every behaviour is tested on plain
bytes and the trio server in node.py stays thin. The user commands themselves live in commands.py.

A connection is either a *user* (logs in with a callsign, types DXSpider commands, receives the live
spot stream through `wants` + `spot_line` and the bulletins through `wants_bulletin`) or a *feed*
(logged in as `CALL TOKEN`, or a peer from a trusted address that starts pushing without logging in):
it pushes raw `DX de`, PC11, PC61 and CC11 lines, published with their original spotter (and origin
node), and gets no prompts and no spots. A user on a trusted address may push such lines too.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, datetime

from hamsrv.firehose import commands
from hamsrv.firehose.bulletins import Posted, Talk
from hamsrv.firehose.cluster import (
    Announce,
    DxSpot,
    Wwv,
    cluster_date,
    format_dx_line,
    parse_line,
)
from hamsrv.firehose.events import CheckSecret, Disconnect, Event, LoggedIn, Publish, Send
from hamsrv.firehose.lines import MAX_LINE, LineReader
from hamsrv.firehose.modes import SKIMMER_ALL, SKIMMER_KIND_NAMES, is_skimmer, skimmer_kind
from hamsrv.firehose.pcprot import feed_spot_ok
from hamsrv.firehose.ring import RingEntry
from hamsrv.firehose.spotfilter import FilterError, UserFilter
from hamsrv.model import Spot, login_call, without_control

DEFAULT_WIDTH = 80  # AK1A line width (FACTS 2.1)
MAX_LOGIN_ATTEMPTS = 5  # then the connection is closed: a bot is not going to type a callsign
MAX_ERRORS = 20  # DXChannel.pm `$maxerrors = 20`: unknown commands in a row before a disconnect
CRLF = "\r\n"
BEEP = "\a\a"  # DXCommandmode.pm: `$buf .= "\a\a" if $self->{beep};`



DUPLICATE_NOTICE = b"*** duplicate spot: already on the cluster, not sent again\r\n"


class State(enum.Enum):
    LOGIN = "login"
    USER = "user"
    FEED = "feed"
    VERIFYING = "verifying"  # waiting for the server's answer to CheckSecret
    CLOSED = "closed"


_BYE_WORDS = frozenset({"b", "bye", "q", "quit", "exit", "logout"})
PREFERENCES = ("width", "echo", "skimmer", "filter", "want_dx", "want_ann", "want_wwv", "want_wcy",
               "want_talk", "want_grid", "want_cq", "beep", "ve7cc", "name", "qth", "qra", "location")


class ClusterSession:
    """The protocol state of one cluster connection (see the module docstring)."""

    def __init__(self, node_call: str = "HAMSRV", *, trusted_feed: bool = False,
                 feed_tokens: Collection[str] = (), clock: Callable[[], datetime] | None = None,
                 max_line: int = MAX_LINE, max_login_attempts: int = MAX_LOGIN_ATTEMPTS,
                 accounts: bool = False):
        """`trusted_feed`: the peer's address may push raw spot lines, before or after logging in;
        `feed_tokens`: answering `login:` with `CALL TOKEN` turns any peer into a feed; `accounts`:
        `CALL SECRET` (another second word) signs in a registered user, whose spots are `verified`."""
        self.accounts = accounts
        self.verified = False
        self.node_call = node_call.upper()
        self.trusted_feed = trusted_feed
        self.feed_tokens = tuple(feed_tokens)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.max_login_attempts = max_login_attempts
        self.state = State.LOGIN
        self.call = ""
        # the user's settings, DXSpider's defaults (DXUser.pm: wantrbn 0, wantdx/ann/wwv/wcy/talk 1)
        self.width = DEFAULT_WIDTH
        self.echo = False
        self.skimmer: frozenset[str] = frozenset()  # skimmer kinds wanted: CW, RTTY, FT, BEACON, PSK
        self.filter = UserFilter()
        self.want_dx = self.want_ann = self.want_wwv = self.want_wcy = self.want_talk = True
        self.want_grid = self.want_cq = self.beep = self.ve7cc = False
        self.name = self.qth = self.qra = self.location = ""
        self.errors = 0  # unknown commands in a row
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
        if self.state is State.VERIFYING:
            return []  # typed ahead of the answer: dropped
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
        if call is not None and len(words) == 2 and self.accounts:
            self.state, self.call = State.VERIFYING, call
            return [CheckSecret(call, words[1])]
        return self._login_failed(words)

    def secret_checked(self, ok: bool) -> list[Event]:
        """The server's answer to CheckSecret: signed in as a verified user, or another try."""
        if self.state is not State.VERIFYING:
            return []
        if not ok:
            self.state, self.call = State.LOGIN, ""
            return self._login_failed(["", ""])
        self.state, self.verified = State.USER, True
        welcome = (f"Hello {self.call}, this is {self.node_call} running hamsrv; signed in, your spots are "
                   f"marked verified.{CRLF}Type HELP for commands, BYE to leave.{CRLF}")
        return [LoggedIn(self.call, feed=False), Send(welcome.encode()), Send(self.prompt())]

    def _login_failed(self, words: list[str]) -> list[Event]:
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
        return line[:6].upper() == "DX DE " or line[:5] in ("PC11^", "PC61^", "CC11^")

    def _feed_line(self, line: str) -> list[Event]:
        if line.lower() in _BYE_WORDS:
            return self._close(f"73 {self.call or 'feed'}", "bye")
        now = self.clock()
        event = parse_line(line, now) if line else None
        if not isinstance(event, DxSpot) or not feed_spot_ok(event.spot, line, now):
            self.feed_lines_ignored += bool(line)
            return []
        spot = event.spot
        # `feed:CALL` names the feed when it relays others' spots; its own spots say just `feed`
        spot.source = f"feed:{self.call}" if self.call and self.call != spot.spotter else "feed"
        return [Publish(spot, by_user=False)]

    # ---- user commands

    def prompt(self) -> bytes:
        """DXSpider's `%C de %M %D %T dxspider >` with our name (FACTS 2.3)."""
        now = self.clock()
        return f"{self.call} de {self.node_call} {cluster_date(now)} {now:%H%M}Z hamsrv >{CRLF}".encode()

    def _reply(self, *lines: str) -> Send:
        return Send("".join(line + CRLF for line in lines).encode("utf-8", "replace"))

    def _close(self, goodbye: str, reason: str) -> list[Event]:
        self.state = State.CLOSED
        return [self._reply(goodbye), Disconnect(reason)]

    def _command(self, line: str) -> list[Event]:
        if self.trusted_feed and self._is_spot_line(line):
            # a trusted peer that logged in with a call and pushes spot lines is a feed from now on:
            # no prompts, no spots sent to it
            self.state = State.FEED
            return [LoggedIn(self.call, feed=True), *self._feed_line(line)]
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
        handler = commands.WORDS.get(head)
        if handler is None:
            handler, args = self._lookup(head, args)
        if handler is None:
            # DXCommandmode.pm: `if (++$self->{errors} > $DXChannel::maxerrors) { $self->send($self->msg('e26'));
            # $self->disconnect; }`; e1 => q{Invalid command}
            self.errors += 1
            if self.errors > MAX_ERRORS:
                return self._close("Too many concurrent errors, you are being disconnected", "too many errors")
            return [self._reply("Invalid command")]
        self.errors = 0
        try:
            return handler(self, args)
        except FilterError as exc:
            return [self._reply(f"*** error: {exc}")]

    @staticmethod
    def _lookup(head: str, args: str) -> tuple[commands.Handler | None, str]:
        """`verb/noun[/n]` with DXSpider's short forms; `sh/dx/50` is `sh/dx 50` (cmd/Aliases)."""
        verb, _, noun = head.partition("/")
        noun, _, count = noun.partition("/")
        if count:
            if not count.isdecimal():
                return None, args
            args = f"{count} {args}".strip()
        return commands.COMMANDS.get((commands.VERBS.get(verb, ""), commands.NOUNS.get(noun, ""))), args

    def preferences(self) -> dict[str, object]:
        """The user's settings, to be given back with `restore` at the next login (DXSpider keeps them in
        its user file; we keep them for the life of the process)."""
        prefs: dict[str, object] = {k: getattr(self, k) for k in PREFERENCES}
        prefs["filter"] = UserFilter(dict(self.filter.accept), dict(self.filter.reject))
        return prefs

    def restore(self, prefs: dict[str, object]) -> None:
        for key, value in prefs.items():
            if key in PREFERENCES:
                setattr(self, key, value)

    def skimmer_description(self) -> str:
        """As cmd/set/wantrbn.pl says it: `ALL MODES`, `NONE`, or the kinds (`CW, RTTY`)."""
        if not self.skimmer:
            return "NONE"
        if self.skimmer == SKIMMER_ALL:
            return "ALL MODES"
        return ", ".join(SKIMMER_KIND_NAMES[k] for k in SKIMMER_KIND_NAMES if k in self.skimmer)

    # ---- output

    def wants(self, entry: RingEntry) -> bool:
        """Whether this live spot goes to this connection (logged-in users only, after filters)."""
        spot = entry.spot
        return (self.state is State.USER and self.want_dx
                and (not is_skimmer(spot) or skimmer_kind(spot) in self.skimmer)
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

    def bulletin_line(self, posted: Posted) -> bytes:
        if not self.beep:
            return posted.line
        return posted.line[:-2] + BEEP.encode() + b"\r\n"

    def spot_line(self, entry: RingEntry) -> bytes:
        """The AK1A `DX de` line with CRLF (or a CC11 line after set/ve7cc); the default 80-column
        line is encoded once per ring entry and shared."""
        if not self.ve7cc and not self.beep and not self.want_grid and not self.want_cq \
                and self.width == DEFAULT_WIDTH:
            if entry.line is None:
                entry.line = (format_dx_line(entry.spot) + CRLF).encode("utf-8", "replace")
            return entry.line
        return (self.format_spot(entry.spot) + CRLF).encode("utf-8", "replace")

    def format_spot(self, spot: Spot) -> str:
        """DXCommandmode.pm dx_spot for this user: CC11 (`set/ve7cc`), else format_dx_spot with the
        grid (`set/dxgrid`) or CQ zone (`set/dxcq`) slots and the beeps (`set/beep`)."""
        if self.ve7cc:
            return format_cc11(spot)
        slot1, slot2 = "", None
        if self.want_grid:
            if spot.extra.get("dx_grid"):
                slot1 = " " + spot.extra["dx_grid"][:4]
            slot2 = f" {spot.spotter_grid[:4]}" if spot.spotter_grid else ""
        if self.want_cq:
            if not slot1 and spot.cqz is not None:
                slot1 = f" {spot.cqz:2d}"  # `$slot1 = sprintf(" %2d", $_[9])`
            zone = spot.extra.get("spotter_cqz") or spot.extra.get("spotter_zone")
            if not slot2 and zone and zone.isdecimal():
                slot2 = f" {int(zone):2d}"
        line = format_dx_line(spot, self.width, slot1, slot2)
        return line + BEEP if self.beep else line

    def format_show_dx(self, spots: Iterable[Spot], query: str = "", real: bool = False) -> bytes:
        """SH/DX listing, newest first: Spot.pm `formatl` (77 columns at width 80), or the `DX de`
        layout for sh/fdx, or CC11 lines after set/ve7cc. Nothing found: cmd/show/dx.pl
        `$self->msg('e3', "sh/dx", "'$line'")` -> `sh/dx: '<words>' not found`."""
        if self.ve7cc:
            lines = [format_cc11(s) for s in spots]
        elif real:
            lines = [self.format_spot(s) for s in spots]
        else:
            lines = [format_list_line(s, self.width) for s in spots]
        return self._reply(*(lines or [f"sh/dx: '{query}' not found"])).data


def format_list_line(spot: Spot, width: int = DEFAULT_WIDTH) -> str:
    """Spot.pm formatl: `sprintf "%9.1f %-11s %s %s", freq, call, date, time`, a space, the comment cut
    or padded to `width - length(<spotter>) - length($s) - 4`, then `<spotter>`."""
    head = f"{spot.freq:9.1f} {spot.dx:<11} {cluster_date(spot.time)} {spot.time.astimezone(UTC):%H%M}Z"
    spotter = f"<{spot.spotter}>"
    room = max(0, width - len(spotter) - len(head) - 4)
    comment = without_control(spot.comment, " ")[:room]
    return f"{head} {comment:<{room}}{spotter}"


def format_cc11(spot: Spot) -> str:
    """VE7CC.pm dx_spot: `CC11^freq^dx^date^time^comment^spotter^dx cc^spotter cc^origin^dx itu^dx cq^
    spotter itu^spotter cq^dx state^spotter state^dx country^spotter country^dx grid^spotter grid`.
    The cc numbers are ADIF DXCC numbers here (CC Cluster's own numbering is not known to us); ITU
    zones are left empty."""
    t = spot.time.astimezone(UTC)

    def text(value: object) -> str:
        return "" if value is None else without_control(str(value), " ").replace("^", "~")

    fields = [f"{spot.freq:.1f}", spot.dx, cluster_date(t), f"{t:%H%M}Z", text(spot.comment), spot.spotter,
              text(spot.dxcc), text(spot.spotter_dxcc), text(spot.origin), "", text(spot.cqz), "",
              text(spot.extra.get("spotter_cqz")), text(spot.extra.get("dx_state")),
              text(spot.extra.get("spotter_state")), text(spot.country), "",
              text(spot.extra.get("dx_grid", "")[:4]), text((spot.spotter_grid or "")[:4])]
    return "CC11^" + "^".join(fields)


