"""Sans-I/O WebSocket (RFC 6455) for the firehose fast path: handshake, frame encoding, frame reading.

No trio, no sockets: the fan-out builds each frame once with these functions and writes the same bytes
to every client itself; the reader turns received bytes into events and never raises on bad input (a
misbehaving peer yields one `ProtocolError` event carrying the close code to send). The handshake is
wsproto's (h11 parsing).

permessage-deflate (RFC 7692) is accepted only with no context takeover in both directions, so every
message is compressed on its own: one compressed frame can then go to every client of a filter group,
and a client message is inflated with no state kept between messages (no per-client zlib objects).
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from http import HTTPStatus

from wsproto.connection import ConnectionType
from wsproto.events import AcceptConnection, Request
from wsproto.handshake import H11Handshake
from wsproto.utilities import RemoteProtocolError

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
_DATA_OPCODES = frozenset((OP_CONTINUATION, OP_TEXT, OP_BINARY))
_CONTROL_OPCODES = frozenset((OP_CLOSE, OP_PING, OP_PONG))

DEFAULT_MAX_MESSAGE = 64 * 1024  # clients only send small subscribe messages; this is a security limit
# A message in more pieces than this is an attack, not a browser: 1,000 empty continuation frames cost
# a peer 6 kB and would otherwise keep a message open (and, kept as a list, memory growing) for ever.
DEFAULT_MAX_FRAGMENTS = 64
MAX_CONTROL_PAYLOAD = 125  # RFC 6455 5.5


class CloseCode(enum.IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS = 1005  # never sent on the wire: "the close frame had no code"
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013


def _sendable_close_code(code: int) -> bool:
    """Codes a peer may put in a close frame (RFC 6455 7.4; 1012-1014 are IANA-registered since)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


# ---------------------------------------------------------------- encoding

def frame_header(opcode: int, length: int, *, fin: bool = True, masked: bool = False,
                 compressed: bool = False) -> bytes:
    """The header alone, so a caller can assemble header + payload parts with one join. `compressed`
    sets RSV1, which marks the first frame of a permessage-deflate message."""
    first = (0x80 if fin else 0) | (0x40 if compressed else 0) | opcode
    mask_bit = 0x80 if masked else 0
    if length < 126:
        return bytes((first, mask_bit | length))
    if length < 0x10000:
        return struct.pack("!BBH", first, mask_bit | 126, length)
    return struct.pack("!BBQ", first, mask_bit | 127, length)


def apply_mask(data: bytes, mask: bytes) -> bytes:
    """XOR with the 4-byte masking key (its own inverse); one big-int XOR instead of a Python loop."""
    n = len(data)
    if n == 0:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def encode_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = None) -> bytes:
    """One frame. Servers send unmasked frames; `mask` (4 bytes) is for client-side use and tests."""
    if mask is None:
        return frame_header(opcode, len(payload), fin=fin) + payload
    if len(mask) != 4:
        raise ValueError("a masking key is 4 bytes")
    return frame_header(opcode, len(payload), fin=fin, masked=True) + mask + apply_mask(payload, mask)


def close_payload(code: int | None, reason: str = "") -> bytes:
    """Close frame body: no body for 'no status', else the code and a reason cut to fit 125 bytes."""
    if code is None or code == CloseCode.NO_STATUS:
        return b""
    raw = reason.encode()[: MAX_CONTROL_PAYLOAD - 2].decode(errors="ignore").encode()
    return struct.pack("!H", code) + raw


def close_frame(code: int | None, reason: str = "") -> bytes:
    return encode_frame(OP_CLOSE, close_payload(code, reason))


# ---------------------------------------------------------------- permessage-deflate (RFC 7692)

EXTENSION = "permessage-deflate"
_DEFLATE_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 7.2.1: removed after compressing, restored to inflate


@dataclass(frozen=True, slots=True)
class Deflate:
    """An accepted permessage-deflate offer: compress with `window_bits`, answer with `response`."""

    window_bits: int
    response: str


def _window_bits(value: str | None, *, optional: bool) -> int | None:
    """An offer's max_window_bits: 8-15 (a bare client_max_window_bits means "any"); else ValueError."""
    if value is None:
        if optional:
            return None
        raise ValueError("server_max_window_bits needs a value")
    value = value.strip('"')
    if not value.isdecimal() or not 8 <= int(value) <= 15:
        raise ValueError(f"max_window_bits {value!r} is not 8-15")
    return int(value)


def negotiate_deflate(offers: Sequence[str]) -> Deflate | None:
    """The first acceptable permessage-deflate offer among the client's extension offers, or None.

    An offer with an unknown, repeated or malformed parameter is declined (RFC 7692 5), as is
    server_max_window_bits=8, which zlib cannot honour for raw deflate (it would use 9). The answer
    always says no context takeover both ways, which a server may add unasked (RFC 7692 7.1.1)."""
    for offer in offers:
        name, *params = [part.strip() for part in offer.split(";")]
        if name.lower() != EXTENSION:
            continue
        seen: dict[str, str | None] = {}
        try:
            for param in params:
                key, eq, value = (x.strip() for x in param.partition("="))
                key = key.lower()
                if key in seen or key not in ("server_no_context_takeover", "client_no_context_takeover",
                                              "server_max_window_bits", "client_max_window_bits"):
                    raise ValueError(f"parameter {key!r}")
                if key.endswith("takeover") and eq:
                    raise ValueError(f"{key} takes no value")
                seen[key] = value if eq else None
            server_bits = _window_bits(seen["server_max_window_bits"], optional=False) \
                if "server_max_window_bits" in seen else 15
            if "client_max_window_bits" in seen:
                _window_bits(seen["client_max_window_bits"], optional=True)
        except ValueError:
            continue
        if server_bits is None or server_bits < 9:
            continue
        response = f"{EXTENSION}; server_no_context_takeover; client_no_context_takeover"
        if "server_max_window_bits" in seen:
            response += f"; server_max_window_bits={server_bits}"
        return Deflate(server_bits, response)
    return None


def deflate_message(payload: bytes, window_bits: int = 15) -> bytes:
    """One message compressed on its own (no context carried to the next), tail removed."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -window_bits)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4] if data.endswith(_DEFLATE_TAIL) else data


def inflate_message(data: bytes, max_size: int) -> bytes | None:
    """A client's compressed message, inflated with a fresh window; None when corrupt or over `max_size`."""
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(data + _DEFLATE_TAIL, max_size + 1)
    except zlib.error:
        return None
    return out if len(out) <= max_size else None


# ---------------------------------------------------------------- reading

@dataclass(frozen=True, slots=True)
class TextMessage:
    text: str


@dataclass(frozen=True, slots=True)
class BinaryMessage:
    data: bytes


@dataclass(frozen=True, slots=True)
class Ping:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """The peer's close frame; `code` is 1005 (NO_STATUS) when the frame carried none."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """The peer broke the protocol: send a close frame with `code` and stop reading."""

    code: int
    reason: str


Event = TextMessage | BinaryMessage | Ping | Pong | Close | ProtocolError


class FrameReader:
    """Incremental reader: feed bytes with `receive_data`, take events with `next_event` until None.

    A server reads masked frames (`expect_masked=True`); a client reads unmasked ones. After a Close or
    ProtocolError event the reader is finished and ignores further bytes. Buffered bytes are bounded by
    one frame of at most `max_message_size` plus what the caller fed in one call.
    """

    def __init__(self, *, expect_masked: bool = True, max_message_size: int = DEFAULT_MAX_MESSAGE,
                 max_fragments: int = DEFAULT_MAX_FRAGMENTS, deflate: bool = False):
        self.expect_masked = expect_masked
        self.deflate = deflate  # permessage-deflate was negotiated: RSV1 marks a compressed message
        self._compressed = False  # the message in progress is compressed
        self.max_message_size = max_message_size
        self.max_fragments = max_fragments
        self._buffer = bytearray()
        self._message_opcode: int | None = None  # opcode of a fragmented message in progress
        self._message = bytearray()  # the fragments so far, joined: bounded by max_message_size
        self._fragment_count = 0
        self.finished = False

    def receive_data(self, data: bytes) -> None:
        if not self.finished:
            self._buffer += data

    def next_event(self) -> Event | None:
        while not self.finished:
            frame = self._next_frame()
            if frame is None:
                return None
            event = frame if isinstance(frame, ProtocolError) else self._on_frame(*frame)
            if isinstance(event, ProtocolError | Close):
                self.finished = True
                self._buffer = bytearray()
                self._message = bytearray()
            if event is not None:
                return event
        return None

    def _next_frame(self) -> tuple[bool, int, bytes] | ProtocolError | None:
        """Cut one complete frame off the buffer: (fin, opcode, unmasked payload)."""
        buf = self._buffer
        if len(buf) < 2:
            return None
        first, second = buf[0], buf[1]
        fin, opcode = bool(first & 0x80), first & 0x0F
        rsv1_allowed = self.deflate and opcode in (OP_TEXT, OP_BINARY)
        if first & (0x30 if rsv1_allowed else 0x70):
            return ProtocolError(CloseCode.PROTOCOL_ERROR, "reserved bits set without an extension")
        if opcode not in _DATA_OPCODES and opcode not in _CONTROL_OPCODES:
            return ProtocolError(CloseCode.PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
        masked = bool(second & 0x80)
        if masked != self.expect_masked:
            return ProtocolError(CloseCode.PROTOCOL_ERROR,
                              "client frames must be masked" if self.expect_masked
                              else "server frames must not be masked")
        length, offset = second & 0x7F, 2
        if opcode in _CONTROL_OPCODES and (not fin or length > MAX_CONTROL_PAYLOAD):
            return ProtocolError(CloseCode.PROTOCOL_ERROR, "control frames must be whole and at most 125 bytes")
        if length == 126:
            if len(buf) < 4:
                return None
            length, offset = struct.unpack_from("!H", buf, 2)[0], 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, offset = struct.unpack_from("!Q", buf, 2)[0], 10
        if opcode in _DATA_OPCODES and len(self._message) + length > self.max_message_size:
            return ProtocolError(CloseCode.MESSAGE_TOO_BIG, f"message larger than {self.max_message_size} bytes")
        if masked:
            offset += 4
        end = offset + length
        if len(buf) < end:
            return None
        payload = bytes(buf[offset:end])
        if masked:
            payload = apply_mask(payload, bytes(buf[offset - 4:offset]))
        del buf[:end]
        if first & 0x40:
            self._compressed = True  # RSV1 may only be on a message's first frame: checked above
        return fin, opcode, payload

    def _on_frame(self, fin: bool, opcode: int, payload: bytes) -> Event | None:
        if opcode == OP_PING:
            return Ping(payload)
        if opcode == OP_PONG:
            return Pong(payload)
        if opcode == OP_CLOSE:
            return self._on_close(payload)
        if opcode == OP_CONTINUATION:
            if self._message_opcode is None:
                return ProtocolError(CloseCode.PROTOCOL_ERROR, "continuation frame without a message to continue")
        elif self._message_opcode is not None:
            return ProtocolError(CloseCode.PROTOCOL_ERROR, "new message inside a fragmented message")
        else:
            self._message_opcode = opcode
        self._fragment_count += 1
        if self._fragment_count > self.max_fragments:
            return ProtocolError(CloseCode.POLICY_VIOLATION, f"message in more than {self.max_fragments} fragments")
        self._message += payload
        if not fin:
            return None
        data = bytes(self._message)
        message_opcode, compressed = self._message_opcode, self._compressed
        self._message_opcode, self._message, self._fragment_count, self._compressed = None, bytearray(), 0, False
        if compressed:
            inflated = inflate_message(data, self.max_message_size)
            if inflated is None:
                return ProtocolError(CloseCode.MESSAGE_TOO_BIG,
                                     f"compressed message is corrupt or inflates past {self.max_message_size} bytes")
            data = inflated
        if message_opcode == OP_BINARY:
            return BinaryMessage(data)
        try:
            return TextMessage(data.decode("utf-8"))
        except UnicodeDecodeError:
            return ProtocolError(CloseCode.INVALID_DATA, "text message is not valid UTF-8")

    def _on_close(self, payload: bytes) -> Close | ProtocolError:
        if not payload:
            return Close(CloseCode.NO_STATUS, "")
        if len(payload) == 1:
            return ProtocolError(CloseCode.PROTOCOL_ERROR, "close frame with a 1-byte body")
        code = struct.unpack_from("!H", payload)[0]
        if not _sendable_close_code(code):
            return ProtocolError(CloseCode.PROTOCOL_ERROR, f"invalid close code {code}")
        try:
            return Close(code, payload[2:].decode("utf-8"))
        except UnicodeDecodeError:
            return ProtocolError(CloseCode.INVALID_DATA, "close reason is not valid UTF-8")


# ---------------------------------------------------------------- handshake

@dataclass(frozen=True, slots=True)
class Upgrade:
    """An accepted upgrade: send `response` (101), then frames; `trailing` are bytes the client sent
    after its request head (already WebSocket frames)."""

    target: str
    subprotocol: str | None
    origin: str | None
    response: bytes
    trailing: bytes
    deflate: Deflate | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    status: int
    reason: str
    response: bytes


def http_error(status: int, message: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
    """A complete HTTP/1.1 error response with a plain-text body, closing the connection."""
    body = (message + "\n").encode()
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode()]
    lines += [name + b": " + value for name, value in headers]
    lines += [b"Content-Type: text/plain; charset=utf-8", b"Content-Length: %d" % len(body),
              b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def accept_upgrade(head: bytes, *, subprotocols: Sequence[str] = (),
                   allowed_origins: Collection[str] | None = None, deflate: bool = True) -> Upgrade | Rejection:
    """Validate a client's opening handshake and build the answer.

    `head` holds the request head and maybe bytes after it. The first of the client's offered
    subprotocols that we support is chosen (none: the default format). `allowed_origins` (lower-case)
    None lets every Origin in (the firehose is public data); otherwise a browser's Origin must be
    listed. Requests without Origin (non-browser clients, which can send any Origin anyway) pass.
    """
    end = head.find(b"\r\n\r\n")
    if end < 0:
        return _reject(400, "incomplete HTTP request head")
    handshake = H11Handshake(ConnectionType.SERVER)
    try:
        handshake.receive_data(head[: end + 4])
        request = next((e for e in handshake.events() if isinstance(e, Request)), None)
    except RemoteProtocolError as exc:
        hint = exc.event_hint
        status = getattr(hint, "status_code", 400)
        return _reject(status, f"bad WebSocket upgrade: {exc}", getattr(hint, "headers", ()))
    except ValueError as exc:  # wsproto decodes Host with the idna codec, which raises UnicodeError
        return _reject(400, f"bad WebSocket upgrade: undecodable header ({exc})")
    if request is None:
        return _reject(400, "incomplete HTTP request head")
    origin = next((v.decode("latin-1") for k, v in request.extra_headers if k == b"origin"), None)
    if allowed_origins is not None and origin is not None and origin.lower() not in allowed_origins:
        return _reject(403, f"origin {origin!r} is not allowed")
    chosen = next((p for p in request.subprotocols if p in subprotocols), None)
    accepted = negotiate_deflate([str(e) for e in request.extensions]) if deflate else None
    extra = [(b"Sec-WebSocket-Extensions", accepted.response.encode())] if accepted else []
    response = handshake.send(AcceptConnection(subprotocol=chosen, extra_headers=extra))
    return Upgrade(request.target, chosen, origin, response, head[end + 4:], accepted)


def _reject(status: int, reason: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> Rejection:
    return Rejection(status, reason, http_error(status, reason, headers))
