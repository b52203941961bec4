"""Hostile ADX nested a million deep: refused, in bounded memory (stray and nested elements: test_adif.py)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

from hamsrv.ingest.adif import AdxParser, ParseProblem

RECORD = b"<RECORD><CALL>K1ABC</CALL><QSO_DATE>20240101</QSO_DATE><TIME_ON>1200</TIME_ON></RECORD>"


def document(middle: Iterator[bytes]) -> Iterator[bytes]:
    yield b"<?xml version='1.0'?><ADX><HEADER><ADIF_VER>3.1.4</ADIF_VER></HEADER><RECORDS>" + RECORD
    yield from middle
    yield RECORD + b"</RECORDS></ADX>"


def run(chunks: Iterator[bytes]) -> tuple[list[object], int]:
    """All events, and the peak Python memory (bytes) while parsing."""
    parser = AdxParser()
    events: list[object] = []
    tracemalloc.start()
    try:
        for chunk in chunks:
            parser.feed(chunk)
            events.extend(e for e in parser.events() if not isinstance(e, ParseProblem) or len(events) < 50)
        parser.close()
        events.extend(parser.events())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return events, peak


def test_deep_nesting_is_refused():
    """Every open element stays in memory until it ends: a million nested ones must not be kept."""
    events, peak = run(document(iter([b"<A>" * 1000] * 1000)))
    assert peak < 6 << 20, peak
    assert any(isinstance(e, ParseProblem) and "nested more than" in e.message for e in events)
