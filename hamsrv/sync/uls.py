"""FCC ULS amateur licence files (FACTS 5), sans-I/O: pipe-delimited EN, AM and HD records in, rows of
one text column out, ready for PostgreSQL's COPY. PostgreSQL splits the fields (`string_to_array`) and
joins the three files on the unique system identifier, so Python never holds the 1.5 M licences.

Checked here, line by line: the record type and that each line has at least the fields we read. A file
whose first record is wrong is refused (a file with the wrong columns must not replace the callbook);
odd lines further in (a continuation line of a multi-line field) are skipped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

# The record files we read, with the highest field position we use (1-based, FACTS 5).
FIELDS_USED = {"EN": 23, "AM": 16, "HD": 9}
MAX_BAD_SHARE = 0.01  # more odd lines than this and the file is refused


class UlsFormatError(ValueError):
    """An EN/AM/HD file that does not look like one (wrong record type or too few fields)."""


def record_type(name: str) -> str | None:
    """'EN' for 'EN.dat' (any case, any folder in the zip), None for files we do not read."""
    base = name.rsplit("/", 1)[-1].upper()
    kind = base[:-4] if base.endswith(".DAT") else ""
    return kind if kind in FIELDS_USED else None


@dataclass
class CopyRows:
    """Turns one .dat file's bytes, in any pieces, into COPY text rows (one column, the whole line)."""

    kind: str  # EN, AM or HD
    lines: int = 0
    bad: int = 0
    first_bad: str = ""

    def __post_init__(self) -> None:
        self._prefix = self.kind.encode() + b"|"
        self._pipes = FIELDS_USED[self.kind] - 1
        self._partial = b""

    def feed(self, data: bytes) -> bytes:
        """COPY text for the complete lines in `data` (plus what was left over from before)."""
        data = self._partial + data
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        return self._rows(data[:cut].split(b"\n")[:-1])

    def close(self) -> bytes:
        """The last line (a file need not end with a newline); checks the share of odd lines."""
        rest, self._partial = self._partial, b""
        out = self._rows([rest]) if rest.strip() else b""
        if self.lines and self.bad > self.lines * MAX_BAD_SHARE:
            raise UlsFormatError(f"{self.kind}.dat: {self.bad} of {self.lines} lines have the wrong columns "
                                 f"(first: {self.first_bad})")
        return out

    def _rows(self, lines: list[bytes]) -> bytes:
        good = []
        for line in lines:
            line = line.rstrip(b"\r")
            if not line:
                continue
            self.lines += 1
            if line.startswith(self._prefix) and line.count(b"|") >= self._pipes:
                good.append(line)
            else:
                self._odd(line)
        if not good:
            return b""
        text = b"\n".join(good) + b"\n"
        # COPY text format: backslash and tab are special; NUL cannot be stored in text
        return text.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\x00", b"").replace(b"\r", b"\\r")

    def _odd(self, line: bytes) -> None:
        self.bad += 1
        shown = line[:60].decode("latin-1")
        if self.lines == 1:
            fields = line.count(b"|") + 1
            raise UlsFormatError(
                f"{self.kind}.dat has the wrong columns: its first line {shown!r} has {fields} fields, "
                f"expected an {self.kind} record with at least {self._pipes + 1}")
        if not self.first_bad:
            self.first_bad = f"line {self.lines}: {shown!r}"
