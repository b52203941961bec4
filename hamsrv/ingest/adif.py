"""ADIF reading and writing (ADI and ADX) without I/O: parsers are fed bytes, writers yield bytes.

Parsers follow the h11 pattern: `feed(data)`, `close()` at end of input, then pull events with
`next_event()` (None = feed more, or nothing left after close) or `events()`. Parsing is lazy, so memory
holds a few dozen records (the fast path parses up to 64 at a time) plus the unparsed tail of the last
chunk, whatever the file size. Bad input never
raises: it becomes a `ParseProblem` event naming the record and byte offset, and results are identical
however the input is split into chunks.

Three paths read ADI; the rules live in the first, the other two only take what it would read the same:

| path | where | takes | on anything else |
|---|---|---|---|
| careful loop | `AdiParser._parse_more` (tag regex) | everything: header, BOM, control tags (<EOH>, <EOR> in any case, <APP_LoTW_EOF>), lengths counted in UTF-8 bytes and repaired, repeated fields, oversized fields and records, multi-line values, truncated input | - |
| Python fast path | `AdiParser._fast_records` | complete records between two records, up to `fast_records` at a time, whose tags are plain `<NAME:L[:T]>` and whose values are ASCII, one line, exactly as long as declared | stops at that record; the careful loop parses it |
| C fast path | `_fastadi.c` `encode()`, called by `copy.RowMaker` through `between_records()`/`took_records()` | the same plain records, turned straight into binary COPY rows with normalize()'s column rules, when they need no repair, warning or reject (non-ASCII values only in `extra` fields, when their byte length is unambiguous) | returns; the parser (and normalize) take that record |

How their agreement is tested:
- careful loop = Python fast path: tests/ingest/test_adif.py `test_adi_fast_path_agrees_with_the_careful_loop`
  (hypothesis: one feed, where plain records take the fast path, against one byte a feed, where every
  record goes through the careful loop) and `test_adi_fast_path_leaves_irregular_records_to_the_careful_loop`;
  chunking: `test_adi_never_raises_and_chunking_does_not_matter`, `test_adi_tag_soup_chunking_does_not_matter`,
  `test_real_file_chunking_does_not_matter`.
- C = Python (parser + normalize + psycopg's COPY formatter), byte for byte: tests/ingest/test_fastadi.py
  `test_fast_rows_are_the_python_rows` and `test_any_text_is_taken_safely_or_left` (hypothesis),
  `test_plain_records_all_take_the_fast_path`, and `test_testdata_batches_are_the_same_with_and_without_the_fast_path`
  over every file in testdata/adif; tests/ingest/test_copy.py `test_batches_do_not_depend_on_chunking`.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import cast
from xml.sax.saxutils import quoteattr

# Limits (constructor arguments). ADIF sets no maximum field length (FACTS 1.1); real fields are at
# most a few KiB (QSLMSG, NOTES, a public key), so these leave ample room while bounding memory the
# way h11/websockets bound a message.
DEFAULT_MAX_FIELD_BYTES = 64 * 1024
DEFAULT_MAX_RECORD_BYTES = 1024 * 1024
DEFAULT_MAX_HEADER_BYTES = 1024 * 1024

BOM = b"\xef\xbb\xbf"
_BOM_TEXT = BOM.decode("latin-1")


@dataclass(slots=True)
class Header:
    """The file header: fields (upper-case names), type indicators where given, and the free text."""

    fields: dict[str, str]
    preamble: str = ""
    types: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Record:
    """One record: fields in file order, upper-case names; `number` is 1-based; `offset` is the byte
    offset of its first tag in the input; `types` holds the data-type indicators that were given."""

    fields: dict[str, str]
    number: int
    offset: int
    types: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class ParseProblem:
    """Something wrong in the input that did not stop parsing. `record_number` is the record it
    concerns (0 = the header). The message says what happened to the data."""

    record_number: int
    offset: int
    message: str
    field: str | None = None  # a field dropped for its size: the import refuses the record, as the API does


@dataclass(slots=True, frozen=True)
class LotwEof:
    """LoTW's `<APP_LoTW_EOF>` trailer: not a QSO, but proof that a LoTW report arrived whole."""

    offset: int


Event = Header | Record | ParseProblem | LotwEof


def is_lotw_report(header: Header | None) -> bool:
    """True for a LoTW QSO report, where QSL_RCVD/QSLRDATE mean LoTW confirmations (FACTS 3.2)."""
    if header is None:
        return False
    return (header.fields.get("PROGRAMID", "").strip().upper() == "LOTW"
            or header.preamble.startswith("ARRL Logbook of the World Status Report"))


def is_lotw_credit_report(header: Header | None) -> bool:
    """True for LoTW's DXCC QSL Card Report (qslcards.php): credited QSOs, without time of day or mode."""
    if header is None:
        return False
    return ("qslcards.php" in header.fields.get("PROGRAMID", "").lower()
            or header.preamble.startswith("ARRL Logbook of the World DXCC QSL Card Report"))


def _utf8(raw: str) -> str | None:
    """`raw` holds bytes as Latin-1 characters; decode them as UTF-8, None when that is not valid."""
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return None


def _decode(raw: str) -> str:
    """UTF-8 when valid, else Latin-1 (FACTS 1.2; Latin-1 accepts every byte)."""
    text = _utf8(raw)
    return raw if text is None else text


class _Events:
    """The pull side and the limits shared by both parsers."""

    def __init__(self, *, max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
                 max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
                 max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES) -> None:
        self.max_field_bytes = max_field_bytes
        self.max_record_bytes = max_record_bytes
        self.max_header_bytes = max_header_bytes
        self._events: deque[Event] = deque()

    def _parse_more(self) -> bool:
        """Parse until at least one event is queued; False when more input is needed."""
        raise NotImplementedError

    def next_event(self) -> Event | None:
        """The next event, or None when the parser needs more data (or is finished after close)."""
        while not self._events:
            if not self._parse_more():
                return None
        return self._events.popleft()

    def events(self) -> Iterator[Event]:
        """Every event available now."""
        events = self._events
        while events or self._parse_more():
            while events:
                yield events.popleft()


# --------------------------------------------------------------------------------------------- ADI
# Parsed text is the input decoded as Latin-1, so one character is one byte: offsets and lengths are
# byte counts, ASCII values need no further decoding, and the original bytes come back with
# .encode("latin-1"). Quantifiers are bounded so a tag can never be longer than _MAX_TAG, which makes
# "is this '<' the start of a tag?" independent of where chunks were split.
_TAG = re.compile(r"<([^<>:]{0,200})(?::([^<>:]{0,20})(?::([^<>:]{0,20}))?)?>")
_MAX_TAG = 1 + 200 + 1 + 20 + 1 + 20 + 1
_EOR = re.compile(r"<[Ee][Oo][Rr]>")
_LENGTHS = {str(n): n for n in range(10_000)}
_SEPARATORS = frozenset("< \t\r\n")
_names: dict[str, str] = {}
_FAST_RECORDS = 64  # records the fast path takes per call: fewer calls, a bounded queue
_PlainTag = tuple[str, int, str]
_NO_LENGTH = sys.maxsize  # more than any record holds: a record with it fails the length check
_NOT_PLAIN: _PlainTag = ("", _NO_LENGTH, "")


def _plain(value: str) -> bool:
    """Values the fast path may take as they are: ASCII on one line (FACTS 1.2 repairs need neither)."""
    return value.isascii() and "\n" not in value and "\r" not in value


def _field_name(raw: str) -> str:
    name = _names.get(raw)
    if name is None:
        name = _decode(raw).strip().upper()
        if len(_names) < 10_000:
            _names[raw] = name
    return name


def _fits(text: str, end: int) -> bool:
    """A value ending at `end` is plausible when a tag, whitespace or the end of input follows."""
    return end >= len(text) or text[end] in _SEPARATORS


def _char_end(text: str, start: int, count: int) -> int | None:
    """End of `count` UTF-8 characters from `start` (counting lead bytes), None if the text ends first."""
    seen = 0
    for i in range(start, len(text)):
        c = ord(text[i])
        if c < 0x80 or c >= 0xC0:
            if seen == count:
                return i
            seen += 1
    return len(text) if seen == count else None


def _value_end(text: str, start: int, length: int) -> tuple[int, bool]:
    """Where a value of declared `length` really ends, for values that are not plain ASCII one-liners;
    the flag says the declared length ran into the next tag and the value was cut before it.

    FACTS 1.2: take `length` bytes; if that splits a UTF-8 character or runs into text, try `length`
    characters. Multi-line values get two more repairs: writers that counted CRLF as one character,
    and files whose CRLFs were turned into LFs after the lengths were written (adif.org test file).
    A repaired value never swallows a tag; failing all else, the value is cut before the first tag.
    """
    end = start + length
    raw = text[start:end]
    if "\n" in raw and (raw.endswith("\n") or not _fits(text, end)):
        for k in range(1, raw.count("\n") + 1):
            shorter = text[start:end - k]
            if (shorter.count("\n") - shorter.count("\r\n") == k and _fits(text, end - k)
                    and _no_tag_inside(text, start, end - k)):
                return end - k, False
    splits_crlf = raw.endswith("\r") and text[end:end + 1] == "\n"
    if _fits(text, end) and not splits_crlf and _utf8(raw) is not None:
        return end, False
    if not raw.isascii():
        char_end = _char_end(text, start, length)
        if (char_end is not None and _fits(text, char_end) and _utf8(text[start:char_end]) is not None
                and _no_tag_inside(text, start, char_end)):
            return char_end, False
    if "\r" in raw and (splits_crlf or not _fits(text, end)):
        for k in range(1, raw.count("\r") + 1):
            if (text[start:end + k].count("\r\n") == k and _fits(text, end + k)
                    and _no_tag_inside(text, start, end + k)):
                return end + k, False
    if not _fits(text, end):
        tag = _first_tag(text, start, end)
        if tag < end:
            return tag, True
    return end, False


def _first_tag(text: str, start: int, end: int) -> int:
    """Position of the first tag starting in text[start:end], or `end`."""
    i = text.find("<", start, end)
    while i >= 0:
        if _TAG.match(text, i):
            return i
        i = text.find("<", i + 1, end)
    return end


def _no_tag_inside(text: str, start: int, end: int) -> bool:
    return _first_tag(text, start, end) == end


class AdiParser(_Events):
    """Streaming parser for ADI (tagged text) files."""

    def __init__(self, **limits: int) -> None:
        super().__init__(**limits)
        self.fast_records = _FAST_RECORDS  # records _fast_records() takes per call
        self._text = ""            # unparsed input, Latin-1 decoded
        self._pos = 0              # parse position in _text
        self._base = 0             # input offset of _text[0]
        self._closed = False
        self._finished = False
        self._started = False      # BOM and header presence decided
        self._in_header = False
        self._preamble: list[str] = []
        self._fields: dict[str, str] = {}
        self._types: dict[str, str] = {}
        self._record_start = 0     # input offset of the pending record's first tag
        self._dropping = False     # skipping an oversized record up to its <EOR>
        self._count = 0            # records seen (emitted or dropped)
        self._repeated: list[str] = []  # names repeated in the pending record (first value kept)
        self._tags: dict[str, _PlainTag] = {}  # see _learn_tag
        self._eor_spelling = "<EOR>"

    def feed(self, data: bytes) -> None:
        """Add input. Calling it after close() is a programming error."""
        if self._closed:
            raise RuntimeError("feed() after close()")
        if data:
            self._text = self._text[self._pos:] + data.decode("latin-1")
            self._base += self._pos
            self._pos = 0

    def close(self) -> None:
        """Signal the end of input: a pending record without <EOR> is then emitted."""
        self._closed = True

    def between_records(self) -> tuple[str, int, int, int] | None:
        """(text, pos, base, records so far) when the parser stands between two records with no event
        queued, else None. A consumer that understands plain records (hamsrv.ingest._fastadi) may then
        take complete ones from text[pos:] itself and report them with took_records(); input offsets
        are base + index in text."""
        if (not self._started or self._finished or self._in_header or self._fields or self._dropping
                or self._events):
            return None
        return self._text, self._pos, self._base, self._count

    def took_records(self, pos: int, count: int) -> None:
        """`count` records, up to text index `pos`, were taken by the caller of between_records()."""
        self._pos = pos
        self._count += count

    # -- helpers
    def _problem(self, message: str, offset: int, record_number: int | None = None, *,
                 field: str | None = None) -> None:
        if record_number is None:
            record_number = 0 if self._in_header else self._count + 1
        self._events.append(ParseProblem(record_number, offset, message, field))

    def _new_record(self) -> None:
        if self._repeated:
            names = ", ".join(dict.fromkeys(self._repeated))
            self._problem(f"fields repeated {len(self._repeated)} times ({names[:200]}): only the first "
                          "value of each is kept", self._record_start)
            self._repeated = []
        self._fields = {}
        self._types = {}

    def _emit_record(self) -> None:
        record = Record(self._fields, self._count + 1, self._record_start, self._types)
        self._new_record()
        self._count += 1
        self._events.append(record)

    def _emit_header(self) -> None:
        preamble = _decode("".join(self._preamble)).strip() if self._in_header else ""
        header = Header(self._fields, preamble, self._types)
        self._in_header = True  # problems found in it belong to record 0
        self._new_record()
        self._events.append(header)
        self._preamble = []
        self._in_header = False
        self._dropping = False

    def _header_overflow(self, offset: int) -> None:
        self._problem(f"no <EOH> in the first {self.max_header_bytes} bytes: "
                      "the text before it is ignored and the input is read as records", offset)
        self._preamble = []
        self._in_header = False

    def _start(self) -> bool:
        """Skip a BOM and decide whether a header exists (first character not '<', FACTS 1.1)."""
        text = self._text
        if not self._closed and len(text) < len(BOM) + 1:
            return False
        pos = len(BOM) if text.startswith(_BOM_TEXT) else 0
        self._in_header = pos < len(text) and text[pos] != "<"
        self._pos = pos
        self._started = True
        return True

    def _finish(self) -> None:
        self._finished = True
        end = self._base + len(self._text)
        if self._in_header:
            if self._fields or "".join(self._preamble).strip():
                self._emit_header()
                self._problem("input ended before <EOH>: no records", end, 0)
        elif self._fields and not self._dropping:
            self._problem(f"record {self._count + 1} is not closed by <EOR> (input ended)", end)
            self._emit_record()

    def _fast_records(self) -> bool:
        """The common case, up to _FAST_RECORDS at a time: complete records whose tags are plain
        `<NAME:L[:T]>` and whose values are plain (ASCII, one line, as long as declared). It splits at
        '<' (far cheaper than the tag regex), checks the values of a whole record at once, and takes
        only what the careful loop would parse identically; it stops at the first record that is not
        plain, which the careful loop then parses. False when it took no record."""
        text, pos, base = self._text, self._pos, self._base
        tags, eor, limit = self._tags, self._eor_spelling, self.max_record_bytes
        taken = self._count
        for _ in range(self.fast_records):
            end = text.find(eor, pos, pos + limit)
            if end < 0:
                match = _EOR.search(text, pos, pos + limit)
                if match is None:
                    break
                eor = self._eor_spelling = match.group()
                end = match.start()
            pieces = text[pos:end].split("<")
            fields: dict[str, str] = {}
            types: dict[str, str] = {}
            declared = 0
            for piece in pieces[1:]:
                tag_text, gt, data = piece.partition(">")
                try:
                    name, length, kind = tags[tag_text]
                except KeyError:
                    name, length, kind = self._learn_tag(tag_text)
                if not gt:
                    length = _NO_LENGTH
                fields[name] = data[:length]
                declared += length
                if kind:
                    types[name] = kind
            values = "".join(fields.values())
            start = base + pos + len(pieces[0])
            if (len(fields) != len(pieces) - 1 or len(values) != declared or not _plain(values) or not fields
                    or base + end + len(eor) - start > limit):
                other = _EOR.search(text, pos, end)  # the record ends earlier, at an <EOR> spelled otherwise
                if other is None:
                    break
                eor = self._eor_spelling = other.group()
                continue
            self._count += 1
            self._events.append(Record(fields, self._count, start, types))
            pos = end + len(eor)
        self._pos = pos
        return self._count > taken

    def _learn_tag(self, tag_text: str) -> _PlainTag:
        """(NAME, length, TYPE) of a tag text (between '<' and '>') for the fast path, remembered per
        parser; tags it must leave to the careful loop (wrong form, control tags like <EOR>, over the
        field limit) give _NOT_PLAIN."""
        tag = _NOT_PLAIN
        match = _TAG.fullmatch(f"<{tag_text}>")
        if match is not None:
            name_raw, length_raw, type_raw = match.groups()
            name = _field_name(name_raw)
            length = _LENGTHS.get(length_raw or "")
            if name and length is not None and length <= self.max_field_bytes:
                tag = (name, length, (type_raw or "").strip().upper())
        if len(self._tags) < 4096:
            self._tags[tag_text] = tag
        return tag

    def _parse_more(self) -> bool:
        if self._finished:
            return False
        if not self._started and not self._start():
            return False
        if not self._fields and not self._in_header and not self._dropping and self._fast_records():
            return True
        events = self._events
        text = self._text
        size = len(text)
        pos = self._pos
        closed = self._closed
        fields = self._fields
        search = _TAG.search
        while not events:
            if self._in_header and self._base + pos > self.max_header_bytes:
                self._header_overflow(self._base + pos)
                fields = self._fields
            match = search(text, pos)
            if match is None:
                last = text.rfind("<", pos)
                keep = last if last >= 0 and size - last < _MAX_TAG and not closed else size
                if self._in_header:
                    self._preamble.append(text[pos:keep])
                self._pos = keep
                if closed:
                    self._finish()
                    return bool(events)
                return False
            start = match.start()
            if self._in_header and start > pos:
                self._preamble.append(text[pos:start])
            name_raw, length_raw, type_raw = match.groups()
            name = _field_name(name_raw)
            pos = match.end()
            if length_raw is None:
                self._control_tag(name, match.group(), self._base + start)
                fields = self._fields
                continue
            if length_raw.isdigit() and length_raw.isascii():
                length = int(length_raw)
            else:
                self._problem(f"tag {match.group()!r} has no valid length; ignored", self._base + start)
                continue
            if not name:
                self._problem(f"tag {match.group()!r} has no field name; ignored", self._base + start)
                continue
            if length > self.max_field_bytes:
                self._problem(f"field {name} declares {length} bytes, over the limit of "
                              f"{self.max_field_bytes}; ignored", self._base + start, field=name.upper())
                continue
            end = pos + length
            value = text[pos:end]
            if end > size or not value.isascii() or "\n" in value or "\r" in value or "<" in value:
                if not closed and size < pos + 4 * length + _MAX_TAG:  # room to see a tag after any repair
                    self._pos = start
                    return False
                if end > size:
                    self._problem(f"input ended inside field {name}", self._base + start)
                else:
                    end, cut = _value_end(text, pos, length)
                    if cut:
                        self._problem(f"field {name} declares {length} bytes but runs into the next tag; "
                                      f"cut to {end - pos}", self._base + start)
                value = _decode(text[pos:end])
            if not fields:
                self._record_start = self._base + start
            pos = end
            if self._dropping:
                continue
            if name in fields:
                self._repeated.append(name)
            else:
                fields[name] = value
                kind = type_raw.strip().upper() if type_raw else ""
                if kind:
                    self._types[name] = kind
            if not self._in_header and self._base + pos - self._record_start > self.max_record_bytes:
                self._problem(f"record {self._count + 1} is larger than {self.max_record_bytes} bytes; "
                              "skipped up to its <EOR>", self._record_start)
                self._dropping = True
                self._new_record()
                fields = self._fields
        self._pos = pos
        return True

    def _control_tag(self, name: str, tag: str, offset: int) -> None:
        """Tags without a length: <EOR>, <EOH>, <EOF>, LoTW's trailer; anything else is reported."""
        if name == "EOR":
            if self._dropping:
                self._dropping = False
                self._count += 1
            elif self._fields:
                self._in_header = False  # no <EOH> before it: there was no header after all
                self._emit_record()
            self._in_header = False
            self._preamble = []
        elif name == "EOH":
            self._emit_header()
        elif name == "EOF":  # written by some loggers (qle) after the last record; carries nothing
            pass
        elif self._in_header:
            self._preamble.append(tag)
        elif name == "APP_LOTW_EOF":
            if self._fields and not self._dropping:
                self._problem(f"record {self._count + 1} is not closed by <EOR>", offset)
                self._emit_record()
            self._events.append(LotwEof(offset))
        else:
            self._problem(f"tag {tag!r} has no length; ignored", offset)


# --------------------------------------------------------------------------------------------- ADX
_RECORD_OPEN = re.compile(rb"<RECORD[\s>/]")
_ELEMENT_START = re.compile(rb"<[A-Za-z_]")
_MAX_PROLOGUE = 64 * 1024
_MAX_DEPTH = 32  # ADX needs 4 levels (ADX, RECORDS, RECORD, field); each open level is kept in memory


class AdxParser(_Events):
    """Streaming parser for ADX (XML) files with the same events as AdiParser.

    APP elements become `APP_{PROGRAMID}_{FIELDNAME}` fields; header USERDEF elements become
    `USERDEFn` fields in the ADI form `NAME[,{ENUM}|,{RANGE}]`; record USERDEF elements become fields
    named by FIELDNAME. DOCTYPE is refused before the XML parser sees it, so no entity is ever
    declared; expat never loads external entities.
    """

    def __init__(self, **limits: int) -> None:
        super().__init__(**limits)
        self._xml = ET.XMLPullParser(events=("start", "end", "comment"))
        self._closed = False
        self._failed = False
        self._error: str | None = None      # reported once the events before it are out
        self._prologue: bytes | None = b""   # bytes before the root element, until it is seen
        self._fed = 0
        self._scan_tail = b""
        self._record_offsets: deque[int] = deque()
        self._path: list[ET.Element] = []
        self._section = ""
        self._fields: dict[str, str] = {}
        self._types: dict[str, str] = {}
        self._size = 0
        self._oversized = False
        self._preamble: list[str] = []
        self._count = 0
        self._record_offset = 0
        self._closing_error: str | None = None
        self._nested = False  # the field being read contained elements
        self._stray_seen = False  # an element other than <RECORD> under <RECORDS> was reported

    def feed(self, data: bytes) -> None:
        """Add input. Calling it after close() is a programming error."""
        if self._closed:
            raise RuntimeError("feed() after close()")
        if self._failed or not data:
            return
        if self._prologue is not None and not self._check_prologue(data):
            return
        scan = self._scan_tail + data
        base = self._fed - len(self._scan_tail)
        self._record_offsets.extend(base + m.start() for m in _RECORD_OPEN.finditer(scan))
        self._scan_tail = scan[-7:]
        self._fed += len(data)
        self._xml.feed(data)  # an XML error is queued and raised, in order, by read_events()

    def close(self) -> None:
        """Signal the end of input."""
        if self._closed:
            return
        self._closed = True
        if self._failed:
            return
        try:
            self._xml.close()
        except ET.ParseError as exc:
            self._closing_error = f"XML error: {exc}"

    def _check_prologue(self, data: bytes) -> bool:
        """Refuse a DOCTYPE (the only place entities could be declared) before expat reads it."""
        prologue = (self._prologue or b"") + data
        root = _ELEMENT_START.search(prologue)
        head = prologue if root is None else prologue[:root.start()]
        if b"<!DOCTYPE" in head:
            self._fail("DOCTYPE declarations are refused in ADX")
            return False
        if root is not None:
            self._prologue = None
        elif len(prologue) > _MAX_PROLOGUE:
            self._fail(f"no XML element in the first {_MAX_PROLOGUE} bytes")
            return False
        else:
            self._prologue = prologue
        return True

    def _fail(self, message: str) -> None:
        """XML errors are fatal for the rest of the document: report once, then ignore input."""
        if not self._failed:
            self._failed = True
            self._error = message + "; the rest of the input is ignored"

    def _parse_more(self) -> bool:
        try:
            for event in self._xml.read_events():
                kind, elem = cast(tuple[str, ET.Element], event)
                if self._failed:
                    continue
                if kind == "start":
                    self._start(elem)
                elif kind == "end":
                    self._end(elem)
                elif kind == "comment" and self._section == "HEADER" and len(self._path) == 2:
                    self._preamble.append((elem.text or "").strip())
                if self._events:
                    return True
        except ET.ParseError as exc:
            self._fail(f"XML error: {exc}")
        if self._closing_error and not self._failed:
            self._fail(self._closing_error)
        if self._error:
            in_records = self._section == "RECORDS"
            offset = self._record_offset if in_records and len(self._path) > 2 else 0
            self._events.append(ParseProblem(self._count + 1 if in_records else 0, offset, self._error))
            self._error = None
        return bool(self._events)

    def _start(self, elem: ET.Element) -> None:
        depth = len(self._path)
        self._path.append(elem)
        tag = _local(elem.tag)
        if depth >= _MAX_DEPTH:
            self._fail(f"elements nested more than {_MAX_DEPTH} deep")
        elif depth == 0 and tag != "ADX":
            self._fail(f"root element is <{tag}>, not <ADX>")
        elif depth == 1:
            self._section = tag
            self._fields, self._types, self._size, self._oversized = {}, {}, 0, False
        elif depth == 2 and self._section == "RECORDS" and tag == "RECORD":
            self._fields, self._types, self._size, self._oversized = {}, {}, 0, False
            self._record_offset = self._record_offsets.popleft() if self._record_offsets else -1

    def _end(self, elem: ET.Element) -> None:
        """Every element is dropped from the tree as soon as it ends, so memory follows one field of
        one record whatever the document holds (elements kept until their parent ended, and each
        removal a linear search, made hostile files use memory and time without bound)."""
        self._path.pop()
        depth = len(self._path)
        parent = self._path[-1] if self._path else None
        field_depth = 2 if self._section == "HEADER" else 3
        # inside the header, or inside a <RECORD> (not some other element under <RECORDS>)
        in_fields = self._section == "HEADER" or (self._section == "RECORDS" and depth >= 3
                                                  and _local(self._path[2].tag) == "RECORD")
        if depth == 1 and self._section == "HEADER":
            self._events.append(Header(self._fields, "\n".join(p for p in self._preamble if p), self._types))
            self._fields, self._types = {}, {}
        elif depth == field_depth and in_fields:
            self._field(elem)
        elif depth == 2 and self._section == "RECORDS" and _local(elem.tag) == "RECORD":
            self._count += 1
            if not self._oversized and self._fields:
                self._events.append(Record(self._fields, self._count, self._record_offset, self._types))
            self._fields, self._types = {}, {}
        elif depth == 2 and self._section == "RECORDS" and not self._stray_seen:
            self._stray_seen = True  # said once: a hostile file may hold millions
            self._events.append(ParseProblem(self._count + 1, 0, f"element <{_local(elem.tag)}> inside "
                                             "<RECORDS> is not a <RECORD>; it and any like it are ignored"))
        elif depth > field_depth and in_fields:
            self._nested = True  # inside a field: reported when the field ends
        elem.clear()
        if parent is not None:
            parent.remove(elem)  # the only child left: O(1)

    def _field(self, elem: ET.Element) -> None:
        tag = _local(elem.tag).upper()
        attrs = {k.upper(): v for k, v in elem.attrib.items()}
        value = elem.text or ""
        in_header = self._section == "HEADER"
        number = 0 if in_header else self._count + 1
        offset = 0 if in_header else self._record_offset
        if self._nested:
            self._nested = False
            self._events.append(ParseProblem(number, offset, f"element <{tag}> contains elements; "
                                             "only its text before them is kept"))
        if tag == "APP":
            program, name = attrs.get("PROGRAMID", ""), attrs.get("FIELDNAME", "")
            if not program or not name:
                self._events.append(ParseProblem(number, offset, "APP element without PROGRAMID or "
                                                 f"FIELDNAME; value {value[:40]!r} ignored"))
                return
            tag = f"APP_{program}_{name}".upper()
        elif tag == "USERDEF" and in_header:
            tag = "USERDEF" + attrs.get("FIELDID", str(sum(k.startswith("USERDEF") for k in self._fields) + 1))
            spec = attrs.get("ENUM", attrs.get("RANGE"))
            if spec is not None:
                value = f"{value},{spec}"
        elif tag == "USERDEF":
            name = attrs.get("FIELDNAME", "").strip()
            if not name:
                self._events.append(ParseProblem(number, offset, f"USERDEF without FIELDNAME; value "
                                                 f"{value[:40]!r} ignored"))
                return
            tag = name.upper()
        self._size += len(value)
        limit = self.max_header_bytes if in_header else self.max_record_bytes
        if len(value.encode()) > self.max_field_bytes:
            self._events.append(ParseProblem(number, offset, f"field {tag} is longer than "
                                             f"{self.max_field_bytes} bytes; ignored", tag))
        elif self._size > limit and not self._oversized:
            self._oversized = True
            what = "header" if in_header else f"record {number}"
            self._events.append(ParseProblem(number, offset, f"{what} is larger than {limit} bytes; "
                                             "dropped"))
            self._fields, self._types = {}, {}
        elif self._oversized:
            pass
        elif tag in self._fields:
            self._events.append(ParseProblem(number, offset, f"field {tag} repeated; the later value "
                                             f"{value[:40]!r} is ignored"))
        else:
            self._fields[tag] = value
            if "TYPE" in attrs:
                self._types[tag] = attrs["TYPE"].strip().upper()


def _local(tag: object) -> str:
    """Element name without a namespace."""
    return str(tag).rpartition("}")[2]


def sniff_format(head: bytes) -> str:
    """"adx" when the first content after a BOM and whitespace is `<?xml` or `<ADX`, else "adi"."""
    start = head.removeprefix(BOM).lstrip()[:5].upper()
    return "adx" if start.startswith((b"<?XML", b"<ADX")) else "adi"


SNIFF_BYTES = 64 * 1024
# An ADI field tag (<CALL:4>, <QSO_DATE:8:D>), <EOH>/<EOR>, or an ADX root element.
_ADIF_MARK = re.compile(rb"<(?:eoh|eor|adx[\s>]|[a-z_][a-z0-9_ ]*:\d+(?::[a-z])?>)", re.IGNORECASE)


def looks_like_adif(head: bytes) -> bool:
    """Whether the first SNIFF_BYTES of a file hold an ADIF tag or an <ADX> element: the check both the
    HTTP upload and `hamsrv import` make before reading a whole file (a binary, a Markdown file)."""
    return _ADIF_MARK.search(head[:SNIFF_BYTES]) is not None


def parser_for(head: bytes, **limits: int) -> AdiParser | AdxParser:
    """The parser for a file that starts with `head` (which the caller still feeds to it)."""
    return AdxParser(**limits) if sniff_format(head) == "adx" else AdiParser(**limits)


def parse_bytes(data: bytes, **limits: int) -> list[Event]:
    """Every event of a whole file held in memory (tests, small uploads)."""
    parser = parser_for(data[:64], **limits)
    parser.feed(data)
    parser.close()
    return list(parser.events())


# ------------------------------------------------------------------------------------------ writers
_ADI_NAME_FORBIDDEN = re.compile(r"[<>:,{}]|^\s|\s$|[^\x20-\x7e]")
_RESERVED_NAMES = frozenset({"EOR", "EOH", "APP_LOTW_EOF"})
_valid_names: set[str] = set()


def _check_name(name: str) -> bytes:
    """Field names must survive a round trip through a tag: printable ASCII without <>:,{}."""
    if name not in _valid_names:
        if (not name or len(name) > 200 or _ADI_NAME_FORBIDDEN.search(name)
                or name.upper() in _RESERVED_NAMES):
            raise ValueError(f"{name!r} cannot be written as an ADIF field name")
        if len(_valid_names) < 10_000:
            _valid_names.add(name)
    return name.encode("ascii")


def _fields_and_types(item: Record | Header | Mapping[str, str]) -> tuple[Mapping[str, str], Mapping[str, str]]:
    if isinstance(item, Record | Header):
        return item.fields, item.types
    return item, {}


def _adi_fields(fields: Mapping[str, str], types: Mapping[str, str]) -> list[bytes]:
    parts = []
    for name, value in fields.items():
        data = value.encode("utf-8")
        kind = types.get(name)
        if kind:
            parts.append(b"<%s:%d:%s>%s " % (_check_name(name), len(data), kind.encode("ascii"), data))
        else:
            parts.append(b"<%s:%d>%s " % (_check_name(name), len(data), data))
    return parts


def write_adi(header: Header | None, records: Iterable[Record | Mapping[str, str]]) -> Iterator[bytes]:
    """ADI output, one chunk for the header and one per record. Lengths count UTF-8 bytes (what
    LoTW/QRZ/FT8AF converged on, FACTS 1.2). Raises ValueError for a name or preamble that cannot
    be written faithfully."""
    if header is not None:
        if "<" in header.preamble:
            raise ValueError("an ADI preamble cannot contain '<'")
        parts = [header.preamble.encode("utf-8"), b"\n", *_adi_fields(header.fields, header.types), b"<EOH>\n"]
        yield b"".join(parts)
    for record in records:
        fields, types = _fields_and_types(record)
        yield b"".join(_adi_fields(fields, types)) + b"<EOR>\n"


_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_XML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_USERDEF_N = re.compile(r"USERDEF(\d+)")
_RANGE = re.compile(r"\{[^,{}]*:[^,{}]*\}")


def _xml_text(name: str, value: str) -> str:
    if _XML_UNSAFE.search(value):
        raise ValueError(f"field {name} holds a character that XML 1.0 cannot carry")
    return value.translate(_XML_ESCAPES)


def _adx_element(name: str, value: str, kind: str | None, userdef_names: frozenset[str]) -> str:
    _check_name(name)
    upper = name.upper()
    type_attr = f" TYPE={quoteattr(kind)}" if kind else ""
    text = _xml_text(name, value)
    program, _, field_name = upper[4:].partition("_")
    if upper.startswith("APP_") and program and field_name:
        return (f"<APP PROGRAMID={quoteattr(program)} FIELDNAME={quoteattr(field_name)}{type_attr}>"
                f"{text}</APP>")
    if (upper in userdef_names or not _XML_NAME.fullmatch(name) or upper.startswith("XML")
            or upper in ("APP", "USERDEF")):
        return f"<USERDEF FIELDNAME={quoteattr(name)}{type_attr}>{text}</USERDEF>"
    return f"<{name}{type_attr}>{text}</{name}>"


def _adx_header(header: Header) -> tuple[str, frozenset[str]]:
    if "--" in header.preamble or header.preamble.endswith("-"):
        raise ValueError("an ADX preamble (an XML comment) cannot contain '--' or end with '-'")
    parts = ["<HEADER>"]
    if header.preamble:
        _xml_text("preamble", header.preamble)  # comments take no escapes; only check the characters
        parts.append(f"<!-- {header.preamble} -->")
    userdef_names = []
    for name, value in header.fields.items():
        kind = header.types.get(name)
        number = _USERDEF_N.fullmatch(name.upper())
        if number:
            user_name, sep, spec = value.partition(",")
            userdef_names.append(user_name.strip().upper())
            spec_attr = ""
            if sep:
                spec_attr = f" {'RANGE' if _RANGE.fullmatch(spec) else 'ENUM'}={quoteattr(spec)}"
            type_attr = f" TYPE={quoteattr(kind)}" if kind else ""
            parts.append(f"<USERDEF FIELDID={quoteattr(number.group(1))}{type_attr}{spec_attr}>"
                         f"{_xml_text(name, user_name)}</USERDEF>")
        else:
            parts.append(_adx_element(name, value, kind, frozenset()))
    parts.append("</HEADER>")
    return "".join(parts), frozenset(userdef_names)


def write_adx(header: Header | None, records: Iterable[Record | Mapping[str, str]]) -> Iterator[bytes]:
    """ADX output, streamed one chunk per record. APP_ fields become APP elements, names declared as
    USERDEF in the header become USERDEF elements. Raises ValueError for text XML cannot carry."""
    head = '<?xml version="1.0" encoding="UTF-8"?>\n<ADX>\n'
    userdef_names: frozenset[str] = frozenset()
    if header is not None:
        header_xml, userdef_names = _adx_header(header)
        head += header_xml + "\n"
    yield (head + "<RECORDS>\n").encode("utf-8")
    for record in records:
        fields, types = _fields_and_types(record)
        body = "".join(_adx_element(name, value, types.get(name), userdef_names)
                       for name, value in fields.items())
        yield f"<RECORD>{body}</RECORD>\n".encode()
    yield b"</RECORDS>\n</ADX>\n"
