"""A zip file read as it streams in (sans-I/O): bytes in, entry events out, nothing on disk.

Python's zipfile needs a seekable file because it starts from the central directory at the end; the
local headers before each entry carry enough to read a zip front to back (APPNOTE 4.3.7, 4.3.9): the
name, the method (stored or deflate), the CRC and sizes -- or, with flag bit 3, a data descriptor after
the data, whose end a deflate stream marks by itself. Entries we do not want are skipped without
inflating when their compressed size is known. The file is complete only when the end-of-central-
directory record has arrived, so a download cut short is always detected (`close`).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

LOCAL_SIG = b"PK\x03\x04"
CENTRAL_SIG = b"PK\x01\x02"
END_SIG = b"PK\x05\x06"
DESCRIPTOR_SIG = b"PK\x07\x08"
_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # APPNOTE 4.3.7
STORED, DEFLATED = 0, 8
MAX_NAME = 4096
TAIL_KEEP = 65536 + 22  # the end record with the longest comment
STORED_LIMIT = 64 << 20  # a stored entry of unknown size is held until its end is found


class ZipError(ValueError):
    """Not a zip, a corrupt one, or one cut short: the message says which and where."""


@dataclass
class Entry:
    name: str
    method: int
    crc: int
    compressed: int | None  # None: unknown until the data descriptor (flag bit 3)
    size: int | None
    zip64: bool
    described: bool  # a data descriptor follows the data (flag bit 3)
    wanted: bool


def megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class ZipStream:
    """feed(bytes) -> events; close() raises ZipError unless the whole zip arrived.

    Events are tuples: ("start", name, b""), ("data", name, bytes), ("end", name, b"").
    `wanted(name)` picks the entries whose data is returned (others only get checked or skipped)."""

    def __init__(self, wanted: Callable[[str], bool] = lambda name: True):
        self.wanted = wanted
        self.offset = 0  # bytes of the zip consumed so far
        self.complete = False
        self._buf = bytearray()
        self._state = "header"
        self._entry: Entry | None = None
        self._left = 0  # compressed bytes of the current entry still to come (known size)
        self._inflate: zlib._Decompress | None = None
        self._crc = 0
        self._out = 0
        self._scan_from = 0

    def feed(self, data: bytes) -> list[tuple[str, str, bytes]]:
        self._buf += data
        events: list[tuple[str, str, bytes]] = []
        while self._step(events):
            pass
        return events

    def close(self) -> None:
        if not self.complete:
            where = f"inside {self._entry.name}" if self._entry and self._state != "header" else \
                "before the end of its file list"
            raise ZipError(f"zip truncated at {megabytes(self.offset + len(self._buf))} ({where})")

    # ---- the state machine: each step consumes what it can and says whether to go on
    def _take(self, n: int) -> bytes:
        piece = bytes(self._buf[:n])
        del self._buf[:n]
        self.offset += n
        return piece

    def _step(self, events: list[tuple[str, str, bytes]]) -> bool:
        if self._state == "header":
            return self._header(events)
        if self._state == "data":
            return self._data(events)
        if self._state == "descriptor":
            return self._descriptor(events)
        return self._tail()

    def _header(self, events: list[tuple[str, str, bytes]]) -> bool:
        if len(self._buf) < 4:
            return False
        sig = bytes(self._buf[:4])
        if sig in (CENTRAL_SIG, END_SIG):
            self._state = "tail"
            return True
        if sig != LOCAL_SIG:
            if self.offset == 0:
                raise ZipError(f"not a zip file (it starts with {bytes(self._buf[:16])!r})")
            raise ZipError(f"corrupt zip: no entry header at byte {self.offset}")
        if len(self._buf) < _LOCAL.size:
            return False
        (_, _, flags, method, _, _, crc, csize, usize, name_len, extra_len) = _LOCAL.unpack_from(self._buf)
        if name_len > MAX_NAME:
            raise ZipError(f"corrupt zip: an entry name of {name_len} bytes at byte {self.offset}")
        if len(self._buf) < _LOCAL.size + name_len + extra_len:
            return False
        self._take(_LOCAL.size)
        name = self._take(name_len).decode("utf-8" if flags & 0x800 else "cp437", "replace")
        extra = self._take(extra_len)
        if flags & 0x1:
            raise ZipError(f"{name} is encrypted")
        if method not in (STORED, DEFLATED):
            raise ZipError(f"{name} uses compression method {method} (only stored and deflate are read)")
        zip64 = self._zip64_sizes(extra) is not None
        if csize == 0xFFFFFFFF or usize == 0xFFFFFFFF:
            sizes = self._zip64_sizes(extra)
            if sizes is None:
                raise ZipError(f"corrupt zip: {name} has ZIP64 sizes but no ZIP64 extra field")
            usize, csize = sizes
        described = bool(flags & 0x8)
        known = not described or csize != 0
        self._entry = Entry(name, method, crc, csize if known else None, usize if known else None, zip64,
                            described, self.wanted(name))
        self._left = csize if known else 0
        self._inflate = zlib.decompressobj(-15) if method == DEFLATED else None
        self._crc, self._out = 0, 0
        self._state = "data"
        if self._entry.wanted:
            events.append(("start", name, b""))
        return True

    @staticmethod
    def _zip64_sizes(extra: bytes) -> tuple[int, int] | None:
        """(size, compressed size) from a ZIP64 extra field (APPNOTE 4.5.3), None without one."""
        i = 0
        while i + 4 <= len(extra):
            tag, size = struct.unpack_from("<HH", extra, i)
            if tag == 0x0001 and size >= 16 and i + 4 + size <= len(extra):
                usize, csize = struct.unpack_from("<QQ", extra, i + 4)
                return usize, csize
            i += 4 + size
        return None

    def _emit(self, events: list[tuple[str, str, bytes]], raw: bytes) -> None:
        entry = self._entry
        assert entry is not None
        if self._inflate is not None:
            try:
                out = self._inflate.decompress(raw)
            except zlib.error as exc:
                raise ZipError(f"corrupt zip: {entry.name}: {exc}") from None
        else:
            out = raw
        if out:
            self._crc = zlib.crc32(out, self._crc)
            self._out += len(out)
            events.append(("data", entry.name, out))

    def _data(self, events: list[tuple[str, str, bytes]]) -> bool:
        entry = self._entry
        assert entry is not None
        if not self._buf:
            return False
        if entry.compressed is not None:  # known size: take exactly that much (unwanted: skip it unread)
            piece = self._take(min(self._left, len(self._buf)))
            self._left -= len(piece)
            if entry.wanted:
                self._emit(events, piece)
            if self._left:
                return False
            if entry.wanted and self._inflate is not None and not self._inflate.eof:
                raise ZipError(f"corrupt zip: {entry.name}: the compressed data ends early")
            if entry.described:
                self._state = "descriptor"
            else:
                self._finish(events, entry.crc, entry.size)
                self._state = "header"
            return True
        if self._inflate is None:
            return self._stored_until_descriptor(events)
        # unknown size (data descriptor): deflate marks its own end
        raw = self._take(len(self._buf))
        self._emit(events if entry.wanted else [], raw)
        if self._inflate.eof:
            unused = self._inflate.unused_data
            self._buf[:0] = unused
            self.offset -= len(unused)
            self._state = "descriptor"
            return True
        return False

    def _stored_until_descriptor(self, events: list[tuple[str, str, bytes]]) -> bool:
        """A stored entry whose size comes after it: its end is the first descriptor signature
        followed by a matching CRC and size (rare; such an entry is held in memory, up to a limit)."""
        entry = self._entry
        assert entry is not None
        sizes = 8 if entry.zip64 else 4
        at = self._scan_from
        while (at := self._buf.find(DESCRIPTOR_SIG, at)) >= 0:
            if len(self._buf) < at + 8 + 2 * sizes:
                return False
            crc = struct.unpack_from("<I", self._buf, at + 4)[0]
            size = struct.unpack_from("<Q" if entry.zip64 else "<I", self._buf, at + 8 + sizes)[0]
            if size == at and zlib.crc32(self._buf[:at]) == crc:
                self._emit(events if entry.wanted else [], self._take(at))
                self._state, self._scan_from = "descriptor", 0
                return True
            at += 1
        self._scan_from = max(0, len(self._buf) - 3)
        if len(self._buf) > STORED_LIMIT:
            raise ZipError(f"{entry.name} is stored with its size after more than {megabytes(STORED_LIMIT)}")
        return False

    def _descriptor(self, events: list[tuple[str, str, bytes]]) -> bool:
        entry = self._entry
        assert entry is not None
        sizes = 8 if entry.zip64 else 4
        has_sig = self._buf[:4] == DESCRIPTOR_SIG
        need = (4 if has_sig else 0) + 4 + 2 * sizes
        if len(self._buf) < max(need, 4):
            return False
        self._take(4 if has_sig else 0)
        crc = struct.unpack("<I", self._take(4))[0]
        self._take(sizes)  # the compressed size: the stream itself told us where the data ended
        usize = struct.unpack("<Q" if entry.zip64 else "<I", self._take(sizes))[0]
        self._finish(events, crc, usize)
        self._state = "header"
        return True

    def _finish(self, events: list[tuple[str, str, bytes]], crc: int, size: int | None) -> None:
        entry = self._entry
        assert entry is not None
        if entry.wanted or entry.compressed is None:
            if self._inflate is not None:
                try:
                    tail = self._inflate.flush()
                except zlib.error as exc:
                    raise ZipError(f"corrupt zip: {entry.name}: {exc}") from None
                if tail:
                    self._crc = zlib.crc32(tail, self._crc)
                    self._out += len(tail)
                    if entry.wanted:
                        events.append(("data", entry.name, tail))
            if self._crc != crc:
                raise ZipError(f"corrupt zip: {entry.name} fails its CRC check")
            if size is not None and self._out != size:
                raise ZipError(f"corrupt zip: {entry.name} is {self._out} bytes, its header says {size}")
        if entry.wanted:
            events.append(("end", entry.name, b""))
        self._entry = None

    def _tail(self) -> bool:
        """After the entries: keep the last bytes until the end record is seen."""
        if self._buf.rfind(END_SIG) >= 0 and len(self._buf) - self._buf.rfind(END_SIG) >= 22:
            self.complete = True
        if len(self._buf) > TAIL_KEEP:
            self._take(len(self._buf) - TAIL_KEEP)
        return False
