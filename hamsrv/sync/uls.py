"""FCC ULS amateur licence files (FACTS 5), sans-I/O: pipe-delimited EN, AM and HD records in, COPY text
rows of the fields we keep out (`COLUMNS`). PostgreSQL joins the three files on the unique system
identifier (USI), so Python never holds the 1.5 M licences, only the piece of a file in hand.

Checked here, line by line: the record type and that each line has at least the fields we read. A file
whose first record is wrong is refused (a file with the wrong columns must not replace the callbook);
odd lines further in (a continuation line of a multi-line field) are skipped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

# The fields we keep of each record (0-based positions, FACTS 5 counts from 1) and their column names.
COLUMNS: dict[str, tuple[tuple[int, str], ...]] = {
    "EN": ((1, "usi"), (5, "entity_type"), (7, "entity_name"), (8, "first_name"), (9, "middle_initial"),
           (10, "last_name"), (14, "email"), (15, "street"), (16, "city"), (17, "state"), (18, "zip"),
           (22, "frn")),
    "AM": ((1, "usi"), (5, "operator_class"), (15, "previous_call")),
    "HD": ((1, "usi"), (4, "callsign"), (5, "license_status"), (7, "grant_date"), (8, "expire_date")),
}
FIELDS_USED = {kind: max(pos for pos, _ in cols) + 1 for kind, cols in COLUMNS.items()}  # EN 23, AM 16, HD 9
MAX_USI_DIGITS = 18  # fits a bigint
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
    """Turns one .dat file's bytes, in any pieces, into COPY text rows of its COLUMNS (tab separated;
    an empty field is '' which the COPY reads as NULL). The USI must be a number; the HD callsign is
    upper-cased."""

    kind: str  # EN, AM or HD
    lines: int = 0
    bad: int = 0
    first_bad: str = ""

    def __post_init__(self) -> None:
        self._prefix = self.kind.encode() + b"|"
        self._pipes = FIELDS_USED[self.kind] - 1
        self._positions = [pos for pos, _ in COLUMNS[self.kind]]
        self._partial = b""

    def feed(self, data: bytes) -> bytes:
        """COPY text for the complete lines in `data` (plus what was left over from before)."""
        data = self._partial + self.escape(data)
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        return self._rows(data[:cut].split(b"\n")[:-1])

    def close(self) -> bytes:
        """The last line (a file need not end with a newline); checks the share of odd lines."""
        rest, self._partial = self._partial, b""  # escaped already
        out = self._rows([rest]) if rest.strip() else b""
        if self.lines and self.bad > self.lines * MAX_BAD_SHARE:
            raise UlsFormatError(f"{self.kind}.dat: {self.bad} of {self.lines} lines have the wrong columns "
                                 f"(first: {self.first_bad})")
        return out

    def _rows(self, lines: list[bytes]) -> bytes:
        rows = []
        positions, pipes, prefix, hd = self._positions, self._pipes, self._prefix, self.kind == "HD"
        for line in lines:
            line = line.rstrip(b"\r")
            if not line:
                continue
            if b"\r" in line:  # COPY would take a bare CR for the end of the row
                line = line.replace(b"\r", b"\\r")
            self.lines += 1
            fields = line.split(b"|")
            usi = fields[1] if len(fields) > 1 else b""
            if not line.startswith(prefix) or len(fields) <= pipes or not usi.isdigit() \
                    or len(usi) > MAX_USI_DIGITS:
                self._odd(line)
                continue
            if hd:
                fields[4] = fields[4].strip().upper()
            rows.append(b"\t".join([fields[p] for p in positions]))
        if not rows:
            return b""
        return b"\n".join(rows) + b"\n"

    @staticmethod
    def escape(data: bytes) -> bytes:
        """COPY text format: backslash and tab are special and NUL cannot be stored; done on the raw
        bytes before they are split, so a tab inside a field never becomes a column separator."""
        return data.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\x00", b"")

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
