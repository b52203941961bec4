"""Hostile ADX: nested a million deep, stray elements under <RECORDS>, elements inside a field: refused
or reported, in bounded memory."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

from hamsrv.ingest.adif import AdxParser, ParseProblem, Record

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


def test_stray_and_nested_elements_cost_no_memory():
    """Elements under <RECORDS> that are not <RECORD>, and elements inside a field, were kept until their
    parent ended (and each removal searched the parent), so memory grew with the file."""
    junk = b"<JUNK><A>1</A><B/></JUNK>" * 1000
    nested = b"<X/>" * 5000
    events, peak = run(iter([b"<ADX><HEADER><ADIF_VER>3.1.4</ADIF_VER></HEADER><RECORDS>", *[junk] * 100,
                             b"<RECORD><CALL>W1AW</CALL><COMMENT>hi", *[nested] * 100,
                             b"</COMMENT></RECORD></RECORDS></ADX>"]))
    assert peak < 3_000_000, f"peak {peak / 1e6:.1f} MB while parsing 4.5 MB"  # it was 87 MB
    records = [e for e in events if isinstance(e, Record)]
    problems = [e.message for e in events if isinstance(e, ParseProblem)]
    assert [r.fields for r in records] == [{"CALL": "W1AW", "COMMENT": "hi"}]
    assert len(problems) == 2 and "not a <RECORD>" in problems[0] and "contains elements" in problems[1]
