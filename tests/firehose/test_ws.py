"""The sans-I/O WebSocket layer: RFC 6455 byte-exact examples, the reader's error events, handshakes."""

from __future__ import annotations

import base64
import hashlib
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hamsrv.firehose import ws

RFC_MASK = bytes.fromhex("37fa213d")


def read_all(data: bytes, *, expect_masked: bool = True, chunks: list[int] | None = None,
             max_message_size: int = ws.DEFAULT_MAX_MESSAGE, deflate: bool = False) -> list[ws.Event]:
    reader = ws.FrameReader(expect_masked=expect_masked, max_message_size=max_message_size, deflate=deflate)
    events: list[ws.Event] = []
    pieces, pos = [], 0
    for size in chunks or []:
        pieces.append(data[pos:pos + size])
        pos += size
    pieces.append(data[pos:])
    for piece in pieces:
        reader.receive_data(piece)
        while (event := reader.next_event()) is not None:
            events.append(event)
    return events


# ---------------------------------------------------------------- RFC 6455 section 5.7 examples

def test_rfc_unmasked_text() -> None:
    frame = bytes.fromhex("810548656c6c6f")
    assert ws.encode_frame(ws.OP_TEXT, b"Hello") == frame
    assert read_all(frame, expect_masked=False) == [ws.TextMessage("Hello")]


def test_rfc_masked_text() -> None:
    frame = bytes.fromhex("818537fa213d7f9f4d5158")
    assert ws.encode_frame(ws.OP_TEXT, b"Hello", mask=RFC_MASK) == frame
    assert read_all(frame) == [ws.TextMessage("Hello")]


def test_rfc_fragmented_unmasked_text() -> None:
    frames = bytes.fromhex("010348656c") + bytes.fromhex("80026c6f")
    assert ws.encode_frame(ws.OP_TEXT, b"Hel", fin=False) + ws.encode_frame(ws.OP_CONTINUATION, b"lo") == frames
    assert read_all(frames, expect_masked=False) == [ws.TextMessage("Hello")]


def test_rfc_ping_and_masked_pong() -> None:
    ping = bytes.fromhex("890548656c6c6f")
    pong = bytes.fromhex("8a8537fa213d7f9f4d5158")
    assert ws.encode_frame(ws.OP_PING, b"Hello") == ping
    assert ws.encode_frame(ws.OP_PONG, b"Hello", mask=RFC_MASK) == pong
    assert read_all(ping, expect_masked=False) == [ws.Ping(b"Hello")]
    assert read_all(pong) == [ws.Pong(b"Hello")]


@pytest.mark.parametrize(("size", "header"), [(256, "827e0100"), (65536, "827f0000000000010000")])
def test_rfc_binary_extended_lengths(size: int, header: str) -> None:
    payload = bytes(range(256)) * (size // 256)
    frame = ws.encode_frame(ws.OP_BINARY, payload)
    assert frame[: len(header) // 2] == bytes.fromhex(header)
    assert frame[len(header) // 2:] == payload
    assert read_all(frame, expect_masked=False, max_message_size=size) == [ws.BinaryMessage(payload)]


def test_close_frame_encoding() -> None:
    assert ws.close_frame(1000) == bytes.fromhex("880203e8")
    assert ws.close_frame(None) == bytes.fromhex("8800")
    long_reason = "é" * 100  # 200 bytes of UTF-8: cut to fit 123 without splitting a character
    payload = ws.close_payload(1001, long_reason)
    assert len(payload) <= 125
    assert payload[2:].decode() == "é" * 61


# ---------------------------------------------------------------- the reader's error events

def masked(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    return ws.encode_frame(opcode, payload, fin=fin, mask=RFC_MASK)


@pytest.mark.parametrize(("data", "code"), [
    (ws.encode_frame(ws.OP_TEXT, b"hi"), 1002),  # client frame not masked
    (bytes((0xC1,)) + masked(ws.OP_TEXT, b"hi")[1:], 1002),  # RSV1 without an extension
    (bytes((0x83,)) + masked(ws.OP_TEXT, b"hi")[1:], 1002),  # reserved opcode 3
    (masked(ws.OP_CONTINUATION, b"x"), 1002),  # continuation without a start
    (masked(ws.OP_TEXT, b"a", fin=False) + masked(ws.OP_TEXT, b"b"), 1002),  # new message mid-fragment
    (masked(ws.OP_PING, b"x", fin=False), 1002),  # fragmented control frame
    (masked(ws.OP_PING, b"x" * 126), 1002),  # control frame too long
    (masked(ws.OP_CLOSE, b"\x03"), 1002),  # 1-byte close body
    (masked(ws.OP_CLOSE, b"\x03\xe7"), 1002),  # close code 999
    (masked(ws.OP_CLOSE, b"\x03\xed"), 1002),  # 1005 may not be sent
    (masked(ws.OP_TEXT, b"\xff\xfe"), 1007),  # text not UTF-8
    (masked(ws.OP_CLOSE, b"\x03\xe8\xff"), 1007),  # close reason not UTF-8
    (masked(ws.OP_TEXT, b"x" * 101), 1009),  # over max_message_size (100 here)
    (masked(ws.OP_TEXT, b"x" * 60, fin=False) + masked(ws.OP_CONTINUATION, b"x" * 60), 1009),
])
def test_protocol_errors_are_events_with_close_codes(data: bytes, code: int) -> None:
    events = read_all(data, max_message_size=100)
    assert len(events) == 1
    assert isinstance(events[0], ws.ProtocolError)
    assert events[0].code == code


def test_too_big_is_reported_before_the_payload_arrives() -> None:
    reader = ws.FrameReader(max_message_size=1000)
    reader.receive_data(masked(ws.OP_BINARY, b"x" * 5000)[:8])  # header only
    event = reader.next_event()
    assert isinstance(event, ws.ProtocolError) and event.code == 1009


def test_server_frames_must_not_be_masked_for_a_client_reader() -> None:
    events = read_all(masked(ws.OP_TEXT, b"hi"), expect_masked=False)
    assert isinstance(events[0], ws.ProtocolError) and events[0].code == 1002


def test_close_events_and_the_reader_stops_after_close() -> None:
    data = masked(ws.OP_CLOSE, ws.close_payload(1000, "bye")) + masked(ws.OP_TEXT, b"late")
    assert read_all(data) == [ws.Close(1000, "bye")]
    assert read_all(masked(ws.OP_CLOSE, b"")) == [ws.Close(ws.CloseCode.NO_STATUS, "")]


def test_control_frames_may_interleave_a_fragmented_message() -> None:
    data = masked(ws.OP_TEXT, b"Hel", fin=False) + masked(ws.OP_PING, b"p") + masked(ws.OP_CONTINUATION, b"lo")
    assert read_all(data) == [ws.Ping(b"p"), ws.TextMessage("Hello")]


# ---------------------------------------------------------------- properties

@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 50), max_size=8), expect_masked=st.booleans())
def test_reader_never_raises_on_arbitrary_bytes(data: bytes, cuts: list[int], expect_masked: bool) -> None:
    events = read_all(data, expect_masked=expect_masked, chunks=cuts, max_message_size=300)
    allowed = (ws.TextMessage, ws.BinaryMessage, ws.Ping, ws.Pong, ws.Close, ws.ProtocolError)
    assert all(isinstance(e, allowed) for e in events)
    assert all(not isinstance(e, ws.ProtocolError | ws.Close) for e in events[:-1])  # nothing after the end


message_strategy = st.one_of(
    st.tuples(st.just("text"), st.text(max_size=300).map(str.encode)),
    st.tuples(st.just("binary"), st.binary(max_size=300)),
    st.tuples(st.just("ping"), st.binary(max_size=125)),
    st.tuples(st.just("pong"), st.binary(max_size=125)),
)
OPCODES = {"text": ws.OP_TEXT, "binary": ws.OP_BINARY, "ping": ws.OP_PING, "pong": ws.OP_PONG}


def expected_event(kind: str, payload: bytes) -> ws.Event:
    if kind == "text":
        return ws.TextMessage(payload.decode())
    if kind == "binary":
        return ws.BinaryMessage(payload)
    return ws.Ping(payload) if kind == "ping" else ws.Pong(payload)


@settings(max_examples=200, deadline=None)
@given(messages=st.lists(st.tuples(message_strategy, st.integers(1, 4)), max_size=8),
       masks=st.lists(st.binary(min_size=4, max_size=4), min_size=1, max_size=4),
       cuts=st.lists(st.integers(0, 200), max_size=12), expect_masked=st.booleans(),
       close=st.tuples(st.sampled_from([1000, 1001, 1008, 4000]), st.text(max_size=20)))
def test_round_trip_any_payload_any_fragmentation_any_chunking(
        messages: list[tuple[tuple[str, bytes], int]], masks: list[bytes], cuts: list[int],
        expect_masked: bool, close: tuple[int, str]) -> None:
    wire, i = [], 0

    def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
        nonlocal i
        i += 1
        mask = masks[i % len(masks)] if expect_masked else None
        return ws.encode_frame(opcode, payload, fin=fin, mask=mask)

    for (kind, payload), pieces in messages:
        if kind in ("ping", "pong") or pieces == 1:
            wire.append(frame(OPCODES[kind], payload))
            continue
        step = max(1, len(payload) // pieces)
        parts = [payload[k:k + step] for k in range(0, len(payload), step)] or [b""]
        for n, part in enumerate(parts):
            opcode = OPCODES[kind] if n == 0 else ws.OP_CONTINUATION
            wire.append(frame(opcode, part, fin=n == len(parts) - 1))
    wire.append(frame(ws.OP_CLOSE, ws.close_payload(*close)))
    events = read_all(b"".join(wire), expect_masked=expect_masked, chunks=cuts)
    assert events == [expected_event(kind, payload) for (kind, payload), _ in messages] + [ws.Close(*close)]


def test_endless_empty_continuations_are_refused_and_cost_nothing() -> None:
    """Issue 10: FIN=0 then empty continuation frames for ever grew one list entry per 6-byte frame."""
    reader = ws.FrameReader()
    reader.receive_data(ws.encode_frame(ws.OP_TEXT, b"{", fin=False, mask=RFC_MASK))
    assert reader.next_event() is None
    empty = ws.encode_frame(ws.OP_CONTINUATION, b"", fin=False, mask=RFC_MASK)
    for _ in range(ws.DEFAULT_MAX_FRAGMENTS - 1):
        reader.receive_data(empty)
        assert reader.next_event() is None
        assert len(reader._message) == 1  # the bytes received, not one entry per frame
    reader.receive_data(empty * 100_000)
    event = reader.next_event()
    assert isinstance(event, ws.ProtocolError) and event.code == ws.CloseCode.POLICY_VIOLATION
    assert reader.finished and reader.next_event() is None


def test_fragments_up_to_the_limit_make_one_message() -> None:
    parts = [b"a"] * ws.DEFAULT_MAX_FRAGMENTS
    wire = b"".join(ws.encode_frame(ws.OP_TEXT if i == 0 else ws.OP_CONTINUATION, p,
                                    fin=i == len(parts) - 1, mask=RFC_MASK) for i, p in enumerate(parts))
    assert read_all(wire) == [ws.TextMessage("a" * ws.DEFAULT_MAX_FRAGMENTS)]


# ---------------------------------------------------------------- handshake

RFC_REQUEST = (b"GET /ws/firehose?band=20m HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               b"Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, hamsrv.msgpack\r\n"
               b"Sec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Version: 13\r\n\r\n")


def test_accept_rfc_example_picks_a_supported_subprotocol_and_deflate_without_context() -> None:
    result = ws.accept_upgrade(RFC_REQUEST + b"\x81", subprotocols=("hamsrv.msgpack",))
    assert isinstance(result, ws.Upgrade)
    assert result.target == "/ws/firehose?band=20m"
    assert result.subprotocol == "hamsrv.msgpack"
    assert result.origin == "http://example.com"
    assert result.trailing == b"\x81"
    response = result.response.lower()
    assert response.startswith(b"http/1.1 101 ")
    assert b"sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=" in response  # RFC 6455 1.3
    assert b"sec-websocket-protocol: hamsrv.msgpack" in response
    assert (b"sec-websocket-extensions: permessage-deflate; server_no_context_takeover; "
            b"client_no_context_takeover\r\n") in response
    assert result.deflate == ws.Deflate(15, "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    plain = ws.accept_upgrade(RFC_REQUEST, deflate=False)
    assert isinstance(plain, ws.Upgrade) and plain.deflate is None and b"extensions" not in plain.response.lower()


NO_TAKEOVER = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


@pytest.mark.parametrize(("offers", "bits", "response"), [
    ([], None, None),
    (["x-webkit-deflate-frame"], None, None),
    (["permessage-deflate"], 15, NO_TAKEOVER),
    (["permessage-deflate; client_max_window_bits"], 15, NO_TAKEOVER),  # what browsers offer
    (["permessage-deflate; client_max_window_bits=10"], 15, NO_TAKEOVER),
    (["permessage-deflate; server_no_context_takeover; client_no_context_takeover"], 15, NO_TAKEOVER),
    (["permessage-deflate; server_max_window_bits=10"], 10, NO_TAKEOVER + "; server_max_window_bits=10"),
    (['permessage-deflate; server_max_window_bits="12"'], 12, NO_TAKEOVER + "; server_max_window_bits=12"),
    # bad or unusable offers are declined, and the next offer is considered
    (["permessage-deflate; server_max_window_bits=8"], None, None),  # zlib cannot deflate with 256 bytes
    (["permessage-deflate; server_max_window_bits=16"], None, None),
    (["permessage-deflate; server_max_window_bits"], None, None),
    (["permessage-deflate; client_max_window_bits=7"], None, None),
    (["permessage-deflate; server_no_context_takeover=1"], None, None),
    (["permessage-deflate; client_no_context_takeover; client_no_context_takeover"], None, None),
    (["permessage-deflate; x-unknown"], None, None),
    (["permessage-deflate; x-unknown", "permessage-deflate; server_max_window_bits=11"], 11,
     NO_TAKEOVER + "; server_max_window_bits=11"),
])
def test_deflate_negotiation(offers: list[str], bits: int | None, response: str | None) -> None:
    """RFC 7692 7.1: each parameter, offered or not; offers with bad parameters are declined."""
    accepted = ws.negotiate_deflate(offers)
    assert (accepted.window_bits, accepted.response) == (bits, response) if accepted else bits is None


@given(st.lists(st.text(max_size=60), max_size=4))
def test_deflate_negotiation_never_raises(offers: list[str]) -> None:
    accepted = ws.negotiate_deflate(["permessage-deflate;" + o for o in offers] + offers)
    assert accepted is None or 9 <= accepted.window_bits <= 15


@given(st.binary(max_size=3000), st.integers(9, 15))
def test_deflated_messages_inflate_on_their_own(payload: bytes, bits: int) -> None:
    """Each message inflates with a fresh zlib object (no context takeover), as a browser would."""
    data = ws.deflate_message(payload, bits)
    assert zlib.decompressobj(-bits).decompress(data + b"\x00\x00\xff\xff") == payload
    assert ws.inflate_message(data, len(payload)) == payload
    assert len(payload) == 0 or ws.inflate_message(data, len(payload) - 1) is None


def test_compressed_client_messages() -> None:
    """RSV1 marks a compressed message when deflate was negotiated; otherwise it is a protocol error.
    A message inflating past the limit (a zip bomb) closes with 1009; RSV1 on a control frame with 1002."""
    body = ws.deflate_message(b'{"band":"20m"}')
    wire = ws.frame_header(ws.OP_TEXT, len(body), compressed=True, masked=True) + RFC_MASK + ws.apply_mask(body, RFC_MASK)
    assert read_all(wire, deflate=True) == [ws.TextMessage('{"band":"20m"}')]
    assert read_all(wire) == [ws.ProtocolError(ws.CloseCode.PROTOCOL_ERROR, "reserved bits set without an extension")]
    bomb = ws.deflate_message(b"x" * (ws.DEFAULT_MAX_MESSAGE + 1))
    wire = ws.frame_header(ws.OP_TEXT, len(bomb), compressed=True, masked=True) + RFC_MASK + ws.apply_mask(bomb, RFC_MASK)
    [event] = read_all(wire, deflate=True)
    assert isinstance(event, ws.ProtocolError) and event.code == ws.CloseCode.MESSAGE_TOO_BIG
    ping = ws.frame_header(ws.OP_PING, 0, compressed=True, masked=True) + RFC_MASK
    [event] = read_all(ping, deflate=True)
    assert isinstance(event, ws.ProtocolError) and event.code == ws.CloseCode.PROTOCOL_ERROR


def test_accept_without_a_supported_subprotocol_uses_the_default() -> None:
    result = ws.accept_upgrade(RFC_REQUEST, subprotocols=())
    assert isinstance(result, ws.Upgrade) and result.subprotocol is None
    assert b"protocol" not in result.response.lower()
    key = base64.b64encode(hashlib.sha1(b"dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    assert key in result.response


@pytest.mark.parametrize(("change", "status"), [
    ((b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8"), 426),
    ((b"Sec-WebSocket-Version: 13\r\n", b""), 400),
    ((b"Upgrade: websocket\r\n", b""), 400),
    ((b"Connection: Upgrade", b"Connection: keep-alive"), 400),
    ((b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b""), 400),
    ((b"GET ", b"POST "), 400),
    ((b"\r\n\r\n", b"\r\n"), 400),  # head never ends
    ((b"HTTP/1.1", b"HTTP/9"), 400),
    ((b"server.example.com", b"xn--zz"), 400),  # Host that the idna codec cannot decode
    ((b"server.example.com", b"\xff\xfe"), 400),
])
def test_bad_upgrades_get_http_errors(change: tuple[bytes, bytes], status: int) -> None:
    result = ws.accept_upgrade(RFC_REQUEST.replace(*change))
    assert isinstance(result, ws.Rejection)
    assert result.status == status
    assert result.response.startswith(b"HTTP/1.1 %d " % status)
    if status == 426:
        assert b"Sec-WebSocket-Version: 13" in result.response


def test_origin_allowlist() -> None:
    assert isinstance(ws.accept_upgrade(RFC_REQUEST, allowed_origins={"http://example.com"}), ws.Upgrade)
    denied = ws.accept_upgrade(RFC_REQUEST, allowed_origins={"https://hamsrv.example"})
    assert isinstance(denied, ws.Rejection) and denied.status == 403
    no_origin = RFC_REQUEST.replace(b"Origin: http://example.com\r\n", b"")
    assert isinstance(ws.accept_upgrade(no_origin, allowed_origins={"https://hamsrv.example"}), ws.Upgrade)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600) | st.builds(lambda a, b, c: RFC_REQUEST[:a] + b + RFC_REQUEST[a:][:c],
                                            st.integers(0, len(RFC_REQUEST)), st.binary(max_size=40),
                                            st.integers(0, len(RFC_REQUEST))))
def test_accept_upgrade_never_raises(head: bytes) -> None:
    assert isinstance(ws.accept_upgrade(head, subprotocols=("hamsrv.msgpack",)), ws.Upgrade | ws.Rejection)
