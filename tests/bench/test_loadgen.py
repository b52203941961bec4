"""The bench's spot counting must be exact however TCP cuts the stream, or its numbers mean nothing."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.loadgen import (
    DeflateScanner,
    FrameMemo,
    StreamScanner,
    ak1a_line,
    encode_for_ingress,
    find_ping,
    json_spot,
    whole_text_frame,
)

NOW = 1_764_183_090.123
# FACTS 2.1, the robust DX-cluster regex
DX_LINE = re.compile(rb"^DX de ([A-Z0-9/\-#]+):\s+(\d+\.\d+)\s+(\S+)\s+(.*?)\s+(\d{4})Z(?:\s+(\S+))?\s*$",
                     re.IGNORECASE)


def text_frame(payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload


def spot(seq: int, phase: str) -> bytes:
    return json_spot(seq, phase, NOW + seq / 1000)


# A tick is a list of (seq, phase) with seq unique, as the publisher makes it; batched servers send
# one JSON array per tick, others one frame per spot; a ping frame may sit between frames.
ticks = st.lists(st.lists(st.sampled_from("wtc"), max_size=8), min_size=1, max_size=6).map(
    lambda phases: [[(i * 10 + j, p) for j, p in enumerate(tick)]
                    for i, tick in enumerate(phases)])


def build_frames(batches: list[list[tuple[int, str]]], batched: bool, pings: bool) -> list[bytes]:
    frames = []
    for batch in batches:
        if batched:
            frames.append(text_frame(b"[" + b",".join(spot(s, p) for s, p in batch) + b"]"))
        else:
            frames.extend(text_frame(spot(s, p)) for s, p in batch)
        if pings:
            frames.append(b"\x89\x04ping")
    return frames


@settings(max_examples=150, deadline=None)
@given(ticks, st.booleans(), st.booleans(), st.lists(st.integers(1, 4000), max_size=12), st.booleans())
def test_counts_and_stamps_survive_any_split(batches: list[list[tuple[int, str]]], batched: bool,
                                             pings: bool, cuts: list[int], timed: bool) -> None:
    frames = build_frames(batches, batched, pings)
    stream = b"".join(frames)
    measured = [s for batch in batches for s, p in batch if p == "t"]
    memo = FrameMemo()
    scanner = StreamScanner(timed)
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    for start, end in zip(points, points[1:], strict=False):
        chunk = bytearray(stream[start:end]) + bytearray(b"\x00" * 7)  # like a reused buffer
        scanner.feed(chunk, end - start, int(NOW * 1000) + 500, memo)
    assert scanner.spots == len(measured)
    if timed:
        assert scanner.histogram is not None
        assert sum(scanner.histogram.values()) == len(measured)


@settings(max_examples=100, deadline=None)
@given(ticks, st.booleans(), st.lists(st.integers(1, 4000), max_size=12), st.booleans())
def test_deflate_scanner_counts_compressed_frames_cut_anywhere(batches: list[list[tuple[int, str]]],
                                                                pings: bool, cuts: list[int], timed: bool) -> None:
    """hamsrv's own compressed frames (permessage-deflate), cut at any point, give the same count; pings
    are answered."""
    from hamsrv.firehose import ws

    frames = []
    for batch in batches:
        payload = ws.deflate_message(b"[" + b",".join(spot(s, p) for s, p in batch) + b"]")
        frames.append(ws.frame_header(ws.OP_TEXT, len(payload), compressed=True) + payload)
        if pings:
            frames.append(b"\x89\x04ping")
    stream = b"".join(frames)
    scanner = DeflateScanner(timed)
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    for start, end in zip(points, points[1:], strict=False):
        scanner.feed(bytearray(stream[start:end]) + bytearray(7), end - start, int(NOW * 1000) + 500, FrameMemo())
    assert scanner.spots == sum(p == "t" for batch in batches for _, p in batch)
    assert len(scanner.pongs) == (len(batches) if pings else 0)
    if timed:
        assert scanner.histogram is not None and sum(scanner.histogram.values()) == scanner.spots


def test_every_single_cut_point() -> None:
    """Exhaustive over one cut, so a marker or timestamp split at any byte is covered."""
    frames = build_frames([[(1, "t"), (2, "w")], [(3, "t")]], batched=True, pings=True)
    stream = b"".join(frames)
    for timed in (False, True):
        for cut in range(len(stream) + 1):
            scanner = StreamScanner(timed)
            for part in (stream[:cut], stream[cut:]):
                scanner.feed(part, len(part), int(NOW * 1000), FrameMemo())
            assert scanner.spots == 2, (timed, cut)
            if timed:
                assert scanner.histogram is not None
                assert sum(scanner.histogram.values()) == 2, cut


@settings(max_examples=50, deadline=None)
@given(ticks, st.booleans())
def test_clients_reading_whole_frames_share_one_scan(batches: list[list[tuple[int, str]]],
                                                     batched: bool) -> None:
    frames = build_frames(batches, batched, pings=True)
    measured = sum(p == "t" for batch in batches for _, p in batch)
    memo = FrameMemo()
    for _ in range(3):  # the second and third clients hit the memo
        client = StreamScanner(timed=True)
        for frame in frames:
            client.feed(frame, len(frame), int(NOW * 1000), memo)
        assert client.spots == measured
        assert client.histogram is not None and sum(client.histogram.values()) == measured


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_frame_and_ping_probes_never_raise(data: bytes) -> None:
    assert whole_text_frame(data, len(data)) in (True, False)
    ping = find_ping(data)
    assert ping is None or len(ping) < 126


def test_whole_frame_detection_uses_every_length_form() -> None:
    for size in (0, 125, 126, 65535, 65536):
        frame = text_frame(b"x" * size)
        assert whole_text_frame(frame, len(frame))
        assert not whole_text_frame(frame, len(frame) - 1) or size == 0


@settings(max_examples=100)
@given(st.integers(0, 10**8), st.sampled_from("wtc"))
def test_cluster_line_parses_back_to_the_same_spot(seq: int, phase: str) -> None:
    line = ak1a_line(seq, phase, NOW)
    match = DX_LINE.match(line.rstrip(b"\r\n"))
    assert match is not None
    assert match.group(1) == b"N1BNC"
    assert match.group(4) == f"{phase}={int(NOW * 1000)} n={seq}".encode()
    assert float(match.group(2)) == 14000.0 + (seq % 3500) / 10


def test_http_ingress_is_a_complete_post() -> None:
    request = encode_for_ingress("http", "/pub", 7, "t", NOW)
    head, body = request.split(b"\r\n\r\n", 1)
    assert head.startswith(b"POST /pub HTTP/1.1")
    assert f"Content-Length: {len(body)}".encode() in head
    assert body == json_spot(7, "t", NOW)
