"""One PC-protocol link to a peer node, as a sans-I/O state machine (the trio side is peering.py).

hamsrv always dials out and logs in with its node call, so the peer speaks first, as DXSpider does on
an incoming node connection (DXProt.pm start: `issue a PC38 followed by a PC18, then wait for a PC20`):

    peer: PC18^DXSpider Version: ... pc9x^5300^
    us:   PC92^OURCALL^<t>^K^5OURCALL:5455:0^0^<users>^H99^   (only when PC18 offered pc9x)
          or PC19^1^OURCALL^0^5455^H25^                         (older software)
          PC20^
    peer: its PC92 A/K records (pc9x) or PC19/PC16s, then PC22^ -> the link is up

After that: PC11/PC61 spots both ways with hop counts, PC12/PC93 announcements and talks, PC23/PC73
WWV/WCY, and PC51 pings both ways with DXSpider's miss rule (DXProt.pm process: every `pingint`
seconds a ping goes out and `nopings` drops by one; an answer sets it back to `$obscount = 2`; a
link whose count has reached 0 when the next ping is due is dead). Routing records (PC16/17/19/21/
50/92 C/D) are read only to learn the peer's call: a spot-only node builds no routing table and
relays nothing but spots, announcements and WWV/WCY.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hamsrv.firehose import pcprot
from hamsrv.firehose.bulletins import Bulletin, Talk
from hamsrv.firehose.cluster import Announce, Wcy, Wwv
from hamsrv.firehose.pcprot import (
    AnnounceMessage,
    Init,
    InitDone,
    Ping,
    RouteRecord,
    SpotMessage,
    WwvMessage,
)
from hamsrv.model import Spot, band_for_mhz

PING_INTERVAL = 5 * 60.0  # DXProt.pm `$pingint = 5*60`
OBSCOUNT = 2  # DXProt.pm `$obscount = 2`: pings that may go unanswered
KEEPALIVE_INTERVAL = 3600.0  # DXProt.pm `$pc92_keepalive_period = 1*60*60`
WWV_MAX_AGE = timedelta(hours=1)  # DXProt.pm `$pc23_max_age = 1*3600`
BULLETIN_MAX_AHEAD = timedelta(seconds=1500)  # handle_23/73: `$d > $main::systime + 1500`
USERS_PER_SENTENCE = 50  # PC92 C/A/D slots per sentence, so no line comes near the length limits
INIT_TIMEOUT = 60.0  # seconds from login to the peer's PC22 (ExtMsg.pm's login timeout is 60 s too)


class PeerState(enum.Enum):
    INIT = "init"  # logged in, waiting for PC18 / PC22
    NORMAL = "normal"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class SendLine:
    line: str


@dataclass(frozen=True, slots=True)
class PublishSpot:
    """A peer's spot for the hub; `spot.extra["hops"]` is the count to pass it on with."""

    spot: Spot


@dataclass(frozen=True, slots=True)
class PostBulletin:
    item: Bulletin
    origin: str
    hops: int | None
    when: datetime | None = None


@dataclass(frozen=True, slots=True)
class Close:
    reason: str


Action = SendLine | PublishSpot | PostBulletin | Close


class PeerProtocol:
    """The PC side of one peer link (see the module docstring). `receive_line` takes each line after
    the telnet login; `tick(now)` runs the ping timer (`now` in monotonic seconds); `spot_line` and
    `bulletin_line` format what hamsrv passes on."""

    def __init__(self, our_call: str, *, ping_interval: float = PING_INTERVAL, obscount: int = OBSCOUNT,
                 clock: Callable[[], datetime] | None = None,
                 users: Callable[[], Collection[str]] = lambda: (),
                 started: float = 0.0, init_timeout: float = INIT_TIMEOUT):
        self.our_call = our_call.upper()
        self.ping_interval, self.obscount = ping_interval, obscount
        self.clock = clock or (lambda: datetime.now(UTC))
        self.users = users
        self.state = PeerState.INIT
        self.peer_call: str | None = None
        self.spider = False
        self.pc9x = False
        self.nopings = obscount
        self.last_ping = started  # DXProt.pm start: `$self->{lastping} = $main::systime`
        self.init_deadline = started + init_timeout
        self.ping_times = 0  # answers received
        self.next_keepalive = started + KEEPALIVE_INTERVAL
        self.dropped: dict[str, int] = {}  # reason -> sentences dropped, for /healthz
        self.ids = pcprot.TimeIds()
        self.announced: set[str] = set()  # our users the peer has been told about (PC92 C/A/D)

    # ---- input

    def receive_line(self, line: str) -> list[Action]:
        if self.state is PeerState.CLOSED:
            return []
        frame = pcprot.parse_frame(line)
        if frame is None:
            return []
        passed = pcprot.decrement_hops(frame.line)  # DXProt.pm normal: every hop count drops on receipt
        if passed is None:
            return self._drop("hops exhausted")
        if passed != frame.line:
            frame = pcprot.parse_frame(passed) or frame
        message = pcprot.decode(frame)
        if message is None:
            return self._learn_call(frame.number, frame.fields)
        if isinstance(message, Init):
            return self._on_pc18(message)
        if isinstance(message, InitDone):
            return self._on_init_done(message.number)
        if isinstance(message, Ping):
            return self._on_ping(message)
        if isinstance(message, RouteRecord):
            if self.peer_call is None and message.node != self.our_call:
                self.peer_call = message.node
            return []
        if isinstance(message, SpotMessage):
            return self._on_spot(message)
        if isinstance(message, AnnounceMessage):
            return self._on_announce(message)
        if isinstance(message, WwvMessage):
            return self._on_bulletin(message.wwv, message.when, message.origin, message.hops,
                                     max_age=WWV_MAX_AGE)
        return self._on_bulletin(message.wcy, message.when, message.origin, message.hops, max_age=None)

    def _drop(self, reason: str) -> list[Action]:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        return []

    def _learn_call(self, number: int, fields: tuple[str, ...]) -> list[Action]:
        """Older software never sends PC92: its first PC19 names it (`PC19^here^call^conf^version...`)."""
        if number == 19 and self.peer_call is None and len(fields) > 1:
            self.peer_call = fields[1].upper()
        return []

    def _on_pc18(self, init: Init) -> list[Action]:
        """DXProtHandle.pm handle_18 (what an outbound DXSpider does): config first, then PC20."""
        self.spider, self.pc9x = init.spider, init.pc9x
        now = self.clock()
        config = pcprot.pc92k(self.our_call, now, len(self.users()), t=self.ids.next(now)) if self.pc9x \
            else pcprot.pc19(self.our_call)
        return [SendLine(config), SendLine(pcprot.pc20())]

    def _on_init_done(self, number: int) -> list[Action]:
        first = [SendLine(pcprot.pc22())] if number == 20 else []  # handle_20 answers with PC22
        self.state = PeerState.NORMAL  # handle_22: `$self->{lastping} = 0; $self->state('normal');`
        self.last_ping = 0.0
        return first + self._user_config()

    def _user_config(self) -> list[Action]:
        """PC92 C naming our users (pc9x peers build their routing from it, and DXSpider's optional
        `$senderverify` checks a spotter against it); later arrivals and departures go as A and D."""
        if not self.pc9x:
            return []
        users = sorted(self.users())
        self.announced = set(users)
        now = self.clock()
        head, rest = users[:USERS_PER_SENTENCE], users[USERS_PER_SENTENCE:]
        lines = [pcprot.pc92c(self.our_call, now, head, t=self.ids.next(now))]
        lines += self._user_changes("A", rest, now)
        return [SendLine(line) for line in lines]

    def _user_changes(self, sort: str, users: list[str], now: datetime) -> list[str]:
        return [pcprot.pc92_users(self.our_call, now, sort, users[i:i + USERS_PER_SENTENCE],
                                  t=self.ids.next(now)) for i in range(0, len(users), USERS_PER_SENTENCE)]

    def _on_ping(self, ping: Ping) -> list[Action]:
        """DXProtHandle.pm handle_51: `if ($flag == 1) { $self->send(pc51($from, $to, '0')) }` else
        the answer to our ping (DXXml/Ping.pm: `$tochan->{nopings} = $nopings`)."""
        if ping.to != self.our_call:
            return self._drop("ping for another node")
        if self.peer_call is None:
            self.peer_call = ping.sender
        if ping.ask:
            return [SendLine(pcprot.pc51(ping.sender, self.our_call, False))]
        self.nopings = self.obscount
        self.ping_times += 1
        return []

    def _on_spot(self, message: SpotMessage) -> list[Action]:
        spot = message.spot
        if spot.origin == self.our_call:
            return self._drop("our own spot came back")
        if not pcprot.spot_time_ok(spot.time, self.clock()):
            return self._drop("spot too old or in the future")
        if band_for_mhz(spot.freq / 1000.0) is None:
            return self._drop("spot outside the amateur bands")
        spot.source = f"peer:{self.peer_call or 'unknown'}"
        spot.extra["hops"] = str(message.hops if message.hops is not None else pcprot.DEFAULT_HOPS)
        return [PublishSpot(spot)]

    def _on_announce(self, message: AnnounceMessage) -> list[Action]:
        if message.origin == self.our_call or message.node == self.our_call:
            return self._drop("our own announcement came back")
        if message.time_id is not None and not pcprot.time_id_ok(message.time_id, self.clock()):
            return self._drop("PC93 time id out of range")
        a = message.announce
        if message.talk_to is not None:
            return [PostBulletin(Talk(a.sender, message.talk_to, a.text), message.origin, None)]
        if a.to == "LOCAL":  # handle_93: `incoming LOCAL chat not from local node, ignored`
            return self._drop("LOCAL announcement from another node")
        return [PostBulletin(a, message.origin, message.hops)]

    def _on_bulletin(self, item: Wwv | Wcy, when: datetime, origin: str, hops: int | None,
                     max_age: timedelta | None) -> list[Action]:
        now = self.clock()
        if when > now + BULLETIN_MAX_AHEAD or (max_age is not None and when < now - max_age):
            return self._drop("WWV/WCY date out of range")
        if origin == self.our_call:
            return self._drop("our own bulletin came back")
        return [PostBulletin(item, origin, hops, when)]

    # ---- timers

    def tick(self, now: float) -> list[Action]:
        """DXProt.pm process, run every 10 s: pings with the miss rule, and the hourly PC92 K; a peer
        that has not finished its initialisation (PC22) within the init timeout is given up."""
        if self.state is PeerState.INIT and now >= self.init_deadline:
            self.state = PeerState.CLOSED
            return [Close("no PC18/PC22 initialisation from the peer")]
        if self.state is not PeerState.NORMAL:
            return []
        actions: list[Action] = []
        if self.ping_interval and now >= self.last_ping + self.ping_interval:
            if self.nopings <= 0:
                self.state = PeerState.CLOSED
                return [Close(f"no answer to {self.obscount} pings")]
            if self.peer_call is not None:
                actions.append(SendLine(pcprot.pc51(self.peer_call, self.our_call, True)))
            self.nopings -= 1
            self.last_ping = now
            if not self.ping_times:  # `$dxchan->{lastping} += $dxchan->{pingint} / 2 unless @{$dxchan->{pingtime}}`
                self.last_ping += self.ping_interval / 2
        if self.pc9x and now >= self.next_keepalive:
            self.next_keepalive = now + KEEPALIVE_INTERVAL
            now_utc = self.clock()
            actions.append(SendLine(pcprot.pc92k(self.our_call, now_utc, len(self.users()),
                                                 t=self.ids.next(now_utc))))
            return actions + self._user_config()  # DXProt.pm: the periodic config broadcast
        if self.pc9x:
            current = set(self.users())
            now_utc = self.clock()
            arrived, left = sorted(current - self.announced), sorted(self.announced - current)
            self.announced = current
            actions += [SendLine(x) for x in self._user_changes("A", arrived, now_utc)]
            actions += [SendLine(x) for x in self._user_changes("D", left, now_utc)]
        return actions

    # ---- output

    def spot_line(self, spot: Spot, *, local: bool, ip: str = "0.0.0.0") -> str | None:
        """The sentence that passes `spot` on: a local user's spot leaves with our call as origin and
        DXSpider's default hops; a peer's spot keeps its origin and the hop count it came with (already
        lowered on receipt). PC61 to DXSpider, PC11 to others (DXProt.pm send_dx_spot)."""
        if local:
            hops, origin = pcprot.DEFAULT_HOPS if self.spider else pcprot.PC11_HOPS, self.our_call
        else:
            hops = int(spot.extra.get("hops", "0"))
            origin = spot.origin or self.our_call
            if hops <= 0:
                return None
        if self.spider:
            return pcprot.pc61(spot, origin, spot.extra.get("spotter_ip", ip), hops)
        return pcprot.pc11(spot, origin, hops)

    def bulletin_line(self, item: Bulletin, origin: str, when: datetime, hops: int | None) -> str | None:
        """PC93 (pc9x) or PC12 for announcements and talks, PC23 / PC73 for WWV / WCY."""
        if hops is not None and hops <= 0:
            return None
        now = self.clock()
        hop = pcprot.DEFAULT_HOPS if hops is None else hops
        local_origin = origin if origin != self.our_call else None
        if isinstance(item, Talk):
            if not self.pc9x:
                return None  # PC10 talks to old software are not offered
            return pcprot.pc93(self.our_call, now, item.to, item.sender, item.text, origin=local_origin,
                               t=self.ids.next(now))
        if isinstance(item, Announce):
            if self.pc9x:
                to = {"ALL": "*"}.get(item.to, item.to)
                return pcprot.pc93(self.our_call, now, to, item.sender, item.text, origin=local_origin,
                                   t=self.ids.next(now))
            return pcprot.pc12(item.sender, item.text, origin, sysop=item.to == "SYSOP",
                               wx=item.to == "WX", hops=hop)
        if isinstance(item, Wwv):
            return pcprot.pc23(item, when, origin, hop)
        return pcprot.pc73(item, when, origin, hop)
