"""Load generator processes for the firehose bench: WebSocket receivers and one spot publisher.

Both run on asyncio + uvloop with raw sockets and are driven by bench.firehose through stdin/stdout
(one JSON object per line). Receivers never parse JSON: they count a fixed byte marker in the raw
TCP stream, read into one shared buffer; a read that is exactly one frame (the usual case) is
counted once per process, since every client gets the same frame bytes. Only a sample of the
clients also reads the publish timestamps for latency. That keeps the generator's own CPU low
enough that the server, not the generator, is what gets measured (and it is reported, so a
saturated generator shows).

Run by hand:  python -m bench.loadgen receive --port 8080 --clients 100
              python -m bench.loadgen publish --ingress line --port 9000 --rate 100 ...
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import gc
import json
import os
import re
import resource
import socket
import sys
import time
import zlib
from typing import cast

# Every spot's comment starts with "<phase>=<publish time, ms> n=<seq>". Only phase "t" (the
# measured window) is counted; "w" (warm-up) and "c" (cool-down while late spots drain) are not.
MEASURED_MARKER = b'"comment":"t='
TIMESTAMP_PATTERN = re.compile(rb'"comment":"t=(\d{13})')
TIMESTAMP_MATCH_LEN = len(MEASURED_MARKER) + 13
LATENCY_CAP_MS = 120_000  # anything later lands in this last bucket
IP_BIND_ADDRESS_NO_PORT = 24  # Linux: pick the source port at connect() by the full 4-tuple
CONNECTS_IN_FLIGHT = 64  # per receiver process; keeps listen backlogs from overflowing
HANDSHAKE_TIMEOUT = 30.0


def raise_fd_limit() -> int:
    """Thousands of sockets per process need the soft RLIMIT_NOFILE raised to the hard one."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def pin_to_cpus(cpus: str | None) -> None:
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})


# ---------------------------------------------------------------------------- sans-I/O scanning

class MarkerCounter:
    """Counts a fixed marker in a byte stream that arrives cut at arbitrary points.

    Matches inside a chunk are counted with bytes.count (C speed); a match cut by a chunk boundary
    is found in the last len-1 bytes of the previous chunk joined to the first len-1 of this one.
    """

    __slots__ = ("marker", "keep", "tail", "total")

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        self.keep = len(marker) - 1
        self.tail = b""
        self.total = 0

    def feed(self, data: bytes) -> int:
        found = data.count(self.marker) + (self.tail + data[: self.keep]).count(self.marker)
        self.tail = (self.tail + data)[-self.keep:] if len(data) < self.keep else data[-self.keep:]
        self.total += found
        return found


Buffer = bytes | bytearray
STAMP_KEEP = TIMESTAMP_MATCH_LEN - 1  # bytes kept between chunks so no timestamp is cut in two
MARKER_KEEP = len(MEASURED_MARKER) - 1


def whole_text_frame(buf: Buffer, size: int) -> bool:
    """True when buf[:size] is exactly one unmasked, unfragmented text frame.

    A chunk that starts mid-payload cannot pass: its first byte would have to be 0x81, which never
    occurs in the ASCII JSON the bench publishes, and its declared length would have to fit exactly.
    """
    if size < 2 or buf[0] != 0x81:
        return False
    length = buf[1]
    header = 2
    if length == 126:
        header, length = 4, int.from_bytes(buf[2:4], "big")
    elif length == 127:
        header, length = 10, int.from_bytes(buf[2:10], "big")
    return header + length == size


def stamps_in(buf: Buffer, size: int) -> tuple[int, ...]:
    return tuple(int(m.group(1)) for m in TIMESTAMP_PATTERN.finditer(buf, 0, size))


class FrameMemo:
    """Per-process memo of whole frames: every client gets the same bytes for a tick (or a spot),
    so the spots and timestamps in a frame are found once per process instead of once per client.

    The key is the frame's length and bytes from its start, middle and end. Every spot the bench
    publishes has its own sequence number and timestamp, so two different frames never share it.
    """

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self.entries: dict[bytes, tuple[int, ...]] = {}

    def stamps(self, buf: Buffer, size: int) -> tuple[int, ...] | None:
        """Publish timestamps of the measured spots in buf[:size], or None if it is not one frame."""
        if not whole_text_frame(buf, size):
            return None
        middle = size // 2
        key = b"".join((bytes(buf[:96]), bytes(buf[middle:middle + 32]),
                        bytes(buf[max(0, size - 32):size]), size.to_bytes(8, "big")))
        found = self.entries.get(key)
        if found is None:
            if len(self.entries) >= self.limit:
                self.entries.clear()
            found = self.entries[key] = stamps_in(buf, size)
        return found


class StreamScanner:
    """Counts the measured spots one client receives and, if `timed`, bins each one's delay (ms).

    Works on the raw TCP stream without walking frames (frames from unbatched servers are too many
    for Python to walk): markers lie inside a frame's JSON payload and servers never fragment
    them, so only a cut between two reads can split a marker, and the bytes kept across reads
    cover that. A read that is exactly one frame is looked up in the shared FrameMemo instead.
    """

    __slots__ = ("tail", "spots", "histogram")

    def __init__(self, timed: bool) -> None:
        self.tail = b""
        self.spots = 0
        self.histogram: dict[int, int] | None = {} if timed else None

    def feed(self, buf: Buffer, size: int, now_ms: int, memo: FrameMemo) -> bool:
        """Scan buf[:size]; True when it was exactly one text frame (so it holds no ping)."""
        stamps = memo.stamps(buf, size)
        whole = stamps is not None
        if stamps is not None:
            self.tail = b""  # a frame boundary: nothing can straddle it
            self.spots += len(stamps)
        else:
            head = bytes(buf[:min(size, STAMP_KEEP)])
            edge = self.tail + head
            if self.histogram is None:
                self.spots += buf.count(MEASURED_MARKER, 0, size) + (
                    self.tail[-MARKER_KEEP:] + head[:MARKER_KEEP]).count(MEASURED_MARKER)
            else:
                stamps = stamps_in(edge, len(edge)) + stamps_in(buf, size)
                self.spots += len(stamps)
            self.tail = edge[-STAMP_KEEP:] if size < STAMP_KEEP else bytes(buf[size - STAMP_KEEP:size])
        if self.histogram is not None and stamps:
            histogram = self.histogram
            for stamp in stamps:
                delay = min(max(now_ms - stamp, 0), LATENCY_CAP_MS)
                histogram[delay] = histogram.get(delay, 0) + 1
        return whole


class DeflateScanner:
    """Counts spots for a client that negotiated permessage-deflate: its frames are compressed, so it
    walks frames (cheap: compressed traffic is a tenth of the plain bytes) and inflates each distinct
    frame once per process (every client of a group gets the same bytes), via `inflated`, shared.
    Pings are answered through `pongs`, which the client writes out after each read."""

    __slots__ = ("buffer", "spots", "histogram", "pongs")
    inflated: dict[bytes, tuple[int, ...]] = {}  # compressed payload -> its measured timestamps

    def __init__(self, timed: bool) -> None:
        self.buffer = bytearray()
        self.spots = 0
        self.histogram: dict[int, int] | None = {} if timed else None
        self.pongs: list[bytes] = []

    def feed(self, buf: Buffer, size: int, now_ms: int, memo: FrameMemo) -> bool:
        self.buffer += buf[:size]
        data = self.buffer
        while len(data) >= 2:
            length, offset = data[1] & 0x7F, 2
            if length == 126:
                length, offset = int.from_bytes(data[2:4], "big"), 4
            elif length == 127:
                length, offset = int.from_bytes(data[2:10], "big"), 10
            if len(data) < offset + length:
                break
            first, payload = data[0], bytes(data[offset:offset + length])
            del data[:offset + length]
            if first & 0x0F == 0x9:
                self.pongs.append(pong_frame(payload))
            elif first & 0x0F in (0x1, 0x2):
                stamps = self._stamps(payload, compressed=bool(first & 0x40))
                self.spots += len(stamps)
                if self.histogram is not None:
                    for stamp in stamps:
                        delay = min(max(now_ms - stamp, 0), LATENCY_CAP_MS)
                        self.histogram[delay] = self.histogram.get(delay, 0) + 1
        return True

    def _stamps(self, payload: bytes, compressed: bool) -> tuple[int, ...]:
        if not compressed:
            return stamps_in(payload, len(payload))
        found = self.inflated.get(payload)
        if found is None:
            if len(self.inflated) >= 4096:
                self.inflated.clear()
            plain = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
            found = self.inflated[payload] = stamps_in(plain, len(plain))
        return found


def find_ping(data: bytes) -> bytes | None:
    """Payload of a server ping frame (0x89) in `data`, if one seems to be there.

    Cheap and approximate on purpose (no frame walking): a false hit only sends an unsolicited pong,
    which RFC 6455 5.5.3 allows; a ping cut by a chunk boundary is missed and the next one answered.
    """
    at = data.find(b"\x89")
    while at >= 0 and at + 1 < len(data):
        size = data[at + 1]
        if size < 126 and at + 2 + size <= len(data):
            return data[at + 2: at + 2 + size]
        at = data.find(b"\x89", at + 1)
    return None


def pong_frame(payload: bytes) -> bytes:
    """Client frames are masked (RFC 6455 5.3); a zero mask keeps the payload bytes as they are."""
    return bytes((0x8A, 0x80 | len(payload))) + b"\0\0\0\0" + payload


# ---------------------------------------------------------------------------- spots

SPOTTER = "N1BNC"  # the publisher's callsign (also its cluster login)


def spot_values(seq: int, phase: str, now: float) -> tuple[float, str, str]:
    """Frequency (kHz), DX call and comment of spot `seq`, all distinct so no dedupe rule drops it."""
    letters = ""
    rest = seq // 10
    for _ in range(4):
        rest, digit = divmod(rest, 26)
        letters += chr(65 + digit)
    khz = 14000.0 + (seq % 3500) / 10
    return khz, f"K{seq % 10}{letters}", f"{phase}={int(now * 1000)} n={seq}"


def ak1a_line(seq: int, phase: str, now: float) -> bytes:
    """A DX-cluster `DX de` line in the AK1A 80-column layout (FACTS 2.1)."""
    khz, dx, comment = spot_values(seq, phase, now)
    hhmm = time.strftime("%H%M", time.gmtime(now))
    return f"DX de {SPOTTER + ':':<9} {khz:8.1f}  {dx:<12} {comment:<30} {hhmm}Z\r\n".encode()


def json_spot(seq: int, phase: str, now: float) -> bytes:
    """The same spot in the public JSON shape hamsrv sends, for peers that just relay bytes."""
    khz, dx, comment = spot_values(seq, phase, now)
    return json.dumps({
        "id": seq, "spotter": SPOTTER, "freq": khz, "dx": dx, "comment": comment,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "band": "20m",
        "mode": None, "dxcc": 291, "country": "United States", "cont": "NA", "cqz": 5,
        "spotter_dxcc": 291, "spotter_cont": "NA", "snr": None, "wpm": None,
        "skimmer": False, "source": "cluster",
    }, separators=(",", ":")).encode()


def encode_for_ingress(ingress: str, path: str, seq: int, phase: str, now: float) -> bytes:
    """Spot `seq` as its server's ingress wants it: a cluster line, a JSON line or an HTTP POST."""
    if ingress == "cluster":
        return ak1a_line(seq, phase, now)
    body = json_spot(seq, phase, now)
    if ingress == "line":
        return body + b"\n"
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


# ---------------------------------------------------------------------------- receivers

RECEIVE_BUFFER = bytearray(1 << 18)  # shared: every read is scanned before the next one starts
RECEIVE_VIEW = memoryview(RECEIVE_BUFFER)
FRAME_MEMO = FrameMemo()


class FirehoseClient(asyncio.BufferedProtocol):
    """One raw WebSocket subscriber: hand-made handshake, then scanning reads in place."""

    def __init__(self, request: bytes, timed: bool, deflate: bool = False) -> None:
        self.request = request
        self.scanner: StreamScanner | DeflateScanner = DeflateScanner(timed) if deflate else StreamScanner(timed)
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.head = b""
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport.write(self.request)

    def get_buffer(self, sizehint: int) -> memoryview:
        return RECEIVE_VIEW

    def buffer_updated(self, nbytes: int) -> None:
        if not self.opened.done():
            self.handshake_data(bytes(RECEIVE_BUFFER[:nbytes]))
            return
        timed = self.scanner.histogram is not None
        whole = self.scanner.feed(RECEIVE_BUFFER, nbytes, int(time.time() * 1000) if timed else 0,
                                  FRAME_MEMO)
        if isinstance(self.scanner, DeflateScanner) and self.scanner.pongs and self.transport:
            self.transport.write(b"".join(self.scanner.pongs))
            self.scanner.pongs.clear()
        if not whole and RECEIVE_BUFFER.find(b"\x89", 0, nbytes) >= 0 and self.transport:
            payload = find_ping(bytes(RECEIVE_BUFFER[:nbytes]))
            if payload is not None:
                self.transport.write(pong_frame(payload))

    def handshake_data(self, data: bytes) -> None:
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > 16384:
                self.fail(f"no end of response head in {len(self.head)} bytes")
            return
        status = self.head[:end].split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            self.fail(f"handshake refused: {status.decode(errors='replace')}")
            return
        if isinstance(self.scanner, DeflateScanner) and b"permessage-deflate" not in self.head[:end].lower():
            self.scanner = StreamScanner(self.scanner.histogram is not None)  # declined: plain frames
        rest, self.head = self.head[end + 4:], b""
        self.opened.set_result(None)
        if rest:
            self.scanner.feed(rest, len(rest), int(time.time() * 1000), FRAME_MEMO)

    def fail(self, reason: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(reason))
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed during handshake: {exc}"))


DEFLATE_OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"  # as browsers offer


def handshake_request(host: str, port: int, path: str, deflate: bool = False) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n{DEFLATE_OFFER if deflate else ''}"
            f"Sec-WebSocket-Version: 13\r\n\r\n").encode()


def _same(protocol: FirehoseClient) -> FirehoseClient:
    return protocol


async def open_client(args: argparse.Namespace, index: int, sample: bool,
                      gate: asyncio.Semaphore) -> FirehoseClient:
    """Connect from one of several 127.0.0.x source addresses so 5,000+ clients never run out of ports."""
    loop = asyncio.get_running_loop()
    source = f"127.0.0.{args.first_source + index % args.sources}"
    last_error: Exception | None = None
    async with gate:
        for _ in range(3):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind((source, 0))
                sock.setblocking(False)
                await asyncio.wait_for(loop.sock_connect(sock, (args.host, args.port)),
                                       HANDSHAKE_TIMEOUT)
                client = FirehoseClient(handshake_request(args.host, args.port, args.path, args.deflate), sample,
                                        args.deflate)
                await loop.create_connection(functools.partial(_same, client), sock=sock)
                await asyncio.wait_for(client.opened, HANDSHAKE_TIMEOUT)
                return client
            except (TimeoutError, OSError) as exc:
                last_error = exc
                sock.close()
                await asyncio.sleep(0.2)
    raise ConnectionError(f"client {index} from {source}: {last_error!r}")


async def read_commands() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def own_cpu() -> dict[str, float]:
    """This process's user and kernel CPU seconds so far: kernel time is mostly socket reads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"user_s": usage.ru_utime, "system_s": usage.ru_stime}


def emit(event: str, **values: object) -> None:
    print(json.dumps({"event": event, **values}), flush=True)


async def receive(args: argparse.Namespace) -> None:
    """Connect every client, say so, count until told `stop`, then report counts and latencies."""
    commands = await read_commands()
    gate = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
    step = max(1, args.clients // max(1, args.latency_clients))
    results = await asyncio.gather(
        *(open_client(args, i, i % step == 0, gate) for i in range(args.clients)),
        return_exceptions=True)
    clients = [r for r in results if isinstance(r, FirehoseClient)]
    errors = [str(r) for r in results if not isinstance(r, FirehoseClient)]
    emit("connected", clients=len(clients), failed=len(errors), errors=errors[:3])
    gc.freeze()  # the hot path makes no cycles; sweeping thousands of live clients is pure waste
    gc.disable()
    while (await commands.readline()).strip() not in (b"stop", b""):
        pass
    histogram: dict[int, int] = {}
    for client in clients:
        for delay, count in (client.scanner.histogram or {}).items():
            histogram[delay] = histogram.get(delay, 0) + count
    counts = [c.scanner.spots for c in clients]
    emit("report", clients=len(clients), failed=len(errors), delivered=sum(counts),
         min_per_client=min(counts, default=0), max_per_client=max(counts, default=0),
         disconnected=sum(c.lost for c in clients),
         latency_clients=sum(c.scanner.histogram is not None for c in clients), latency_ms=histogram,
         **own_cpu())
    for client in clients:
        if client.transport is not None:
            client.transport.abort()


# ---------------------------------------------------------------------------- publisher

class IngressConnection(asyncio.Protocol):
    """The publisher's socket: writes spots, reads and discards whatever the server answers,
    counting HTTP status lines when the ingress is HTTP."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.keep_received = True  # only until login; then data is only counted
        self.status_ok = MarkerCounter(b"HTTP/1.1 2")
        self.status_any = MarkerCounter(b"HTTP/1.1 ")
        self.arrived = asyncio.Event()
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        if self.keep_received:
            self.received += data
            self.arrived.set()
        self.status_ok.feed(data)
        self.status_any.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)
        self.arrived.set()


async def login(connection: IngressConnection, transport: asyncio.Transport) -> None:
    """Answer the cluster's `login: ` prompt (sent without a newline) with our callsign."""
    deadline = time.monotonic() + 30
    while b"login:" not in connection.received.lower():
        if connection.closed.done() or time.monotonic() > deadline:
            raise ConnectionError(f"no login prompt; got {bytes(connection.received[-200:])!r}")
        connection.arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(connection.arrived.wait(), 1.0)
    transport.write(f"{SPOTTER}\r\n".encode())
    await asyncio.sleep(0.5)  # let the node finish the login before the first spot
    if connection.closed.done():
        raise ConnectionError(f"closed after login: {bytes(connection.received[-200:])!r}")


async def publish(args: argparse.Namespace) -> None:
    """After `go` on stdin, send `rate` spots/s on a fixed schedule: warm-up, window, cool-down.

    Spot i is due at start + i/rate and belongs to the phase of that due time, so the measured
    count is exact; each comment carries the real send time, so publisher lag shows as latency.
    """
    loop = asyncio.get_running_loop()
    raw_transport, connection = await loop.create_connection(IngressConnection, args.host, args.port)
    transport = cast(asyncio.Transport, raw_transport)
    if args.ingress == "cluster":
        await login(connection, transport)
    connection.keep_received = False
    connection.received.clear()
    commands = await read_commands()
    emit("ready")
    encode = functools.partial(encode_for_ingress, args.ingress, args.path)
    warm_end = round(args.warmup * args.rate)
    window_end = warm_end + round(args.window * args.rate)
    total = window_end + round(args.drain * args.rate)
    while (await commands.readline()).strip() not in (b"go", b""):
        pass
    start = time.time()
    emit("started", at=start)
    sent = 0
    max_lag = 0.0
    while sent < total and not connection.closed.done():
        now = time.time()
        due = min(total, int((now - start) * args.rate) + 1)
        if due > sent:
            max_lag = max(max_lag, now - (start + sent / args.rate))
            chunk = []
            for seq in range(sent, due):
                phase = "w" if seq < warm_end else "t" if seq < window_end else "c"
                chunk.append(encode(seq, phase, now))
            transport.write(b"".join(chunk))
            sent = due
        await asyncio.sleep(0.002)
    await asyncio.sleep(0.2)
    emit("published", measured=max(0, min(sent, window_end) - warm_end), sent=sent,
         max_lag_ms=round(max_lag * 1000, 1), closed_early=connection.closed.done(),
         http_ok=connection.status_ok.total, http_responses=connection.status_any.total,
         write_buffer=transport.get_write_buffer_size())
    transport.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="role", required=True)
    recv = sub.add_parser("receive", help="WebSocket subscribers that count spots")
    recv.add_argument("--clients", type=int, required=True)
    recv.add_argument("--path", default="/ws/firehose")
    recv.add_argument("--latency-clients", type=int, default=20,
                      help="clients (spread evenly) that also read every timestamp")
    recv.add_argument("--sources", type=int, default=8, help="number of 127.0.0.x source addresses")
    recv.add_argument("--first-source", type=int, default=2, help="x of the first 127.0.0.x")
    recv.add_argument("--deflate", action="store_true", help="offer permessage-deflate, as browsers do")
    pub = sub.add_parser("publish", help="one spot publisher")
    pub.add_argument("--ingress", choices=("cluster", "line", "http"), required=True)
    pub.add_argument("--path", default="/pub", help="HTTP publish path")
    pub.add_argument("--rate", type=float, required=True, help="spots per second")
    pub.add_argument("--warmup", type=float, default=2.0)
    pub.add_argument("--window", type=float, default=5.0)
    pub.add_argument("--drain", type=float, default=2.0)
    for role in (recv, pub):
        role.add_argument("--host", default="127.0.0.1")
        role.add_argument("--port", type=int, required=True)
        role.add_argument("--cpus", help="pin this process to these CPUs, e.g. 1")
    args = parser.parse_args()
    raise_fd_limit()
    pin_to_cpus(args.cpus)
    import uvloop  # here, so the scanning code can be imported (and tested) without it

    uvloop.run(receive(args) if args.role == "receive" else publish(args))


if __name__ == "__main__":
    main()
