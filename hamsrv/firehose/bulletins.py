"""Announcements, talks, WWV and WCY bulletins: a bounded in-memory board that cluster users follow.

Every ingress (users' `announce`/`talk`, peer nodes' PC12/PC93/PC23/PC73, upstream links' `To ALL de`
and `WWV de` lines) posts here; every cluster user follows the board with a cursor, as they follow the
spot ring; peer links forward what they did not bring in. Duplicates are dropped with DXSpider's keys
and ages (AnnTalk.pm `$dupage = 18*3600`, Geomag.pm `$dupage = 12*3600`, WCY.pm by date).

Kept in memory, not in PostgreSQL: the cluster service has no database handle, bulletins are
ephemeral (DXSpider's own `sh/wwv` cache holds 10) and a restart loses nothing a user needs.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import trio

from hamsrv.firehose.cluster import Announce, Wcy, Wwv, cluster_date, format_announce, format_wcy, format_wwv
from hamsrv.model import without_control

MAX_KEEP = 200  # per kind: what sh/ann, sh/wwv and sh/wcy can show (DXSpider shows 10 by default)
ANN_DUP_AGE = timedelta(hours=18)  # AnnTalk.pm `$dupage = 18*3600`
WWV_DUP_AGE = timedelta(hours=12)  # Geomag.pm `$dupage = 12*3600`
WCY_DUP_AGE = timedelta(hours=12)
ANN_DUP_LENGTH = 30  # AnnTalk.pm `$duplth = 30`: the text compared


@dataclass(frozen=True, slots=True)
class Talk:
    """A private line for one user (`talk G4ABC hello`): DXCommandmode.pm talk `"$to de $from: $line"`."""

    sender: str
    to: str
    text: str


Bulletin = Announce | Talk | Wwv | Wcy


@dataclass(frozen=True, slots=True)
class Posted:
    """One board entry: `when` is when it arrived here (WWV/WCY: the hour it is for, DXSpider dates
    them at minute 18), `source` who brought it (`user:G4ABC`, `peer:GB7DJK`, `link:host`),
    `origin` the node it entered the cluster network at, `hops` the hop count to pass on with."""

    seq: int
    item: Bulletin
    when: datetime
    source: str
    origin: str
    hops: int | None
    line: bytes  # what a user sees, with CRLF, encoded once

    @property
    def kind(self) -> str:
        return type(self.item).__name__.lower()


def user_line(item: Bulletin) -> str:
    if isinstance(item, Announce):
        return format_announce(item)
    if isinstance(item, Wwv):
        return format_wwv(item)
    if isinstance(item, Wcy):
        return format_wcy(item)
    return f"{item.to} de {item.sender}: {without_control(item.text, ' ')}"


def _dup_key(item: Bulletin, when: datetime) -> tuple[Hashable, timedelta] | None:
    if isinstance(item, Announce):
        # AnnTalk.pm dup: `$call|$to|substr($text, 0, $duplth)` with the text squeezed to letters
        text = "".join(c for c in item.text.upper() if c.isalnum())[:ANN_DUP_LENGTH]
        return ("ann", item.sender, item.to, text), ANN_DUP_AGE
    if isinstance(item, Wwv):
        # Geomag.pm dup: `"W$d|$sfi|$k|$a|$call"`, call without SSID
        return ("wwv", when, item.sfi, item.k, item.a, item.sender.split("-")[0]), WWV_DUP_AGE
    if isinstance(item, Wcy):
        return ("wcy", when), WCY_DUP_AGE  # WCY.pm dup: `"C$d"`
    return None  # talks are never deduplicated


PostListener = Callable[[Posted], None]


class Board:
    """The bounded board (see the module docstring). `post` is synchronous; followers wait with
    `wait_after(seq)` and read `after(seq)`."""

    def __init__(self, max_keep: int = MAX_KEEP, clock: Callable[[], datetime] | None = None):
        self.clock = clock or (lambda: datetime.now(UTC))
        self._by_kind: dict[str, deque[Posted]] = {k: deque(maxlen=max_keep)
                                                    for k in ("announce", "talk", "wwv", "wcy")}
        self._recent: deque[Posted] = deque(maxlen=4 * max_keep)  # what followers read, in order
        self._dups: OrderedDict[Hashable, datetime] = OrderedDict()
        self._listeners: list[PostListener] = []
        self.last_seq = 0
        self._wakeup = trio.Event()

    def post(self, item: Bulletin, *, source: str, origin: str, hops: int | None = None,
             when: datetime | None = None) -> Posted | None:
        """Store and announce one bulletin; None when it repeats one seen within DXSpider's dup age."""
        now = self.clock()
        when = when or now
        dup = _dup_key(item, when)
        if dup is not None:
            key, age = dup
            while self._dups and next(iter(self._dups.values())) < now:
                self._dups.popitem(last=False)
            if key in self._dups:
                return None
            self._dups[key] = now + age
            if len(self._dups) > 10_000:  # bounded whatever arrives
                self._dups.popitem(last=False)
        self.last_seq += 1
        posted = Posted(self.last_seq, item, when, source, origin, hops,
                        (user_line(item) + "\r\n").encode("utf-8", "replace"))
        self._by_kind[posted.kind].append(posted)
        self._recent.append(posted)
        for listener in list(self._listeners):
            listener(posted)
        self._wakeup.set()
        self._wakeup = trio.Event()
        return posted

    def add_listener(self, listener: PostListener) -> None:
        """Call `listener(posted)` synchronously for every new bulletin (peers forward with it)."""
        self._listeners.append(listener)

    def newest(self, kind: str, count: int) -> list[Posted]:
        """The newest `count` bulletins of one kind (`announce`, `wwv`, `wcy`), newest first."""
        held = self._by_kind[kind]
        return [held[i] for i in range(len(held) - 1, max(len(held) - count, 0) - 1, -1)]

    def after(self, seq: int) -> list[Posted]:
        """Entries newer than `seq`, oldest first (a follower that fell far behind misses the oldest).
        Scans back from the newest only as far as needed: every user follows the board."""
        out: list[Posted] = []
        for posted in reversed(self._recent):
            if posted.seq <= seq:
                break
            out.append(posted)
        out.reverse()
        return out

    async def wait_after(self, seq: int) -> None:
        while self.last_seq <= seq:
            await self._wakeup.wait()


def firehose_message(posted: Posted) -> dict[str, object] | None:
    """The firehose's `announce` message for an announcement users may all see (not talks, not SYSOP)."""
    item = posted.item
    if not isinstance(item, Announce) or item.to == "SYSOP":
        return None
    return {"type": "announce", "from": item.sender, "to": item.to, "text": item.text,
            "time": posted.when.strftime("%Y-%m-%dT%H:%M:%SZ")}


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
WWV_HEADER = "Date        Hour   SFI   A   K Forecast                              Logger"  # Messages wwv3
WCY_HEADER = "Date        Hour   SFI   A   K Exp.K   R SA    GMF   Aurora   Logger"  # Messages wcy3


def format_bulletins(kind: str, newest_first: list[Posted]) -> bytes:
    r"""sh/ann (DXLogPrint.pm print_item: `"$d $r->[3] -> $r->[2] $r->[4]"` with atime
    `%02d%s%04d@%02d:%02d:%02d`, oldest first), sh/wwv (Geomag.pm print_item: `"$d   %02d %5d %3d %3d
    %-37s <%s>"`, newest first) and sh/wcy (WCY.pm print_item: `"$d   %02d %5d %3d %3d   %3d %3d %-5s
    %-5s %6s   <%s>"`), trailing blanks cut as DXCommandmode.pm does (`s/([^\s])\s+$/$1/`)."""
    lines: list[str] = []
    if kind == "announce":
        for p in reversed(newest_first):
            a, t = p.item, p.when.astimezone(UTC)
            assert isinstance(a, Announce)
            lines.append(f"{t.day:02d}{MONTHS[t.month - 1]}{t.year:04d}@{t:%H:%M:%S} {a.sender} -> {a.to} "
                         f"{without_control(a.text, ' ')}")
    elif kind == "wwv":
        lines.append(WWV_HEADER)
        for p in newest_first:
            w = p.item
            assert isinstance(w, Wwv)
            lines.append(f"{cluster_date(p.when)}   {p.when.hour:02d} {_n(w.sfi):>5} {_n(w.a):>3} {_n(w.k):>3} "
                         f"{without_control(w.text, ' '):<37} <{w.sender}>")
    else:
        lines.append(WCY_HEADER)
        for p in newest_first:
            c = p.item
            assert isinstance(c, Wcy)
            lines.append(f"{cluster_date(p.when)}   {p.when.hour:02d} {_n(c.sfi):>5} {_n(c.a):>3} {_n(c.k):>3}   "
                         f"{_n(c.expk):>3} {_n(c.r):>3} {_n(c.sa):<5} {_n(c.gmf):<5} {_n(c.au):>6}   <{c.sender}>")
    return "".join(line.rstrip() + "\r\n" for line in lines).encode("utf-8", "replace")


def _n(value: object) -> str:
    return "" if value is None else str(value)
