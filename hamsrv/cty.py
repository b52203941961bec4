"""Callsign -> DXCC entity, continent and zones, from an AD1C cty.dat prefix table.

cty.dat (https://www.country-files.com/) is what contest loggers and DXSpider use; it is parsed here as
text. Each record is a header line `Name: CQ: ITU: Cont: Lat: Lon: UTC offset: PrimaryPrefix:` followed by
comma-separated prefixes and `=`exact calls, ending with `;`. A token may carry overrides: `(cq)`,
`[itu]`, `<lat/lon>`, `{cont}`, `~utc~`. A primary prefix starting with `*` marks a WAE-only entity
(e.g. Sicily), which still counts for its parent DXCC entity.

cty.dat carries no ADIF DXCC numbers; `hamsrv/data/dxcc_numbers.tsv` maps primary prefixes to them (see
its header for how it was made). Longitudes here are east-positive (cty.dat itself stores west-positive).
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from hamsrv.errors import InputError
from hamsrv.model import decode_text

DATA_DIR = Path(__file__).resolve().parent / "data"
BUNDLED_CTY = DATA_DIR / "cty.dat"
DXCC_NUMBERS = DATA_DIR / "dxcc_numbers.tsv"

# A real cty.dat has ~346 entities; anything far below that is a truncated or wrong file.
MIN_ENTITIES = 200

# Suffixes that say how a station operates, not where (`G4ABC/P`). A single letter that is also a
# country prefix (F, G, I, K, W, ...) is *not* listed: `G4ABC/F` means "operating from France".
_OPERATING_SUFFIXES = frozenset({"P", "M", "A", "B", "J", "QRP", "QRPP", "LH", "AE", "AG", "PM"})
# Maritime and aeronautical mobile stations are in no DXCC entity.
_NO_ENTITY_SUFFIXES = frozenset({"MM", "AM"})

_TOKEN = re.compile(r"(=?)([A-Z0-9/]+)(.*)")
_OVERRIDE = re.compile(r"\((\d+)\)|\[(\d+)\]|<([-+\d.]+)/([-+\d.]+)>|\{([A-Z]{2})\}|~([-+\d.]+)~")
_CALL_CHARS = re.compile(r"[^A-Z0-9/]")


@dataclass(frozen=True, slots=True)
class Entity:
    """A DXCC entity (or a zone/location variant of one, from a per-prefix override)."""

    name: str
    dxcc: int | None
    cont: str
    cqz: int
    ituz: int
    lat: float
    lon: float  # east-positive degrees
    prefix: str = ""  # primary prefix as cty.dat writes it, without the WAE `*`
    utc_offset: float = 0.0  # hours east of UTC
    wae_only: bool = False


class CtyTable:
    """Exact calls and prefixes -> Entity; `lookup` is a few dict probes (microseconds)."""

    def __init__(self, entities: list[Entity], prefixes: dict[str, Entity], exact: dict[str, Entity]):
        self.entities = entities
        self._prefixes = prefixes
        self._exact = exact
        self._longest = max((len(p) for p in prefixes), default=0)

    def __len__(self) -> int:
        return len(self.entities)

    def plain_tables(self) -> tuple[dict[str, Entity], dict[str, Entity], int]:
        """(exact calls, prefixes, longest prefix): what `lookup` uses for a call without '/', for the
        import fast path, which does the same lookup in C."""
        return self._exact, self._prefixes, self._longest

    def lookup(self, call: str) -> Entity | None:
        """The entity of `call` (any case, portable forms, skimmer `-#` suffixes), or None."""
        call = _normalize(call)
        if not call:
            return None
        hit = self._exact.get(call)
        if hit is not None:
            return hit
        if "/" not in call:
            return self._by_prefix(call)
        return self._portable(call)

    def _by_prefix(self, text: str) -> Entity | None:
        get = self._prefixes.get
        for n in range(min(len(text), self._longest), 0, -1):
            hit = get(text[:n])
            if hit is not None:
                return hit
        return None

    def _portable(self, call: str) -> Entity | None:
        parts = [p for p in call.split("/") if p]
        while len(parts) > 1 and parts[-1] in _OPERATING_SUFFIXES:
            parts.pop()
        if any(p in _NO_ENTITY_SUFFIXES for p in parts[1:]):
            return None
        if not parts:
            return None
        if len(parts) == 1:
            return self._exact.get(parts[0]) or self._by_prefix(parts[0])
        first, second = parts[0], parts[1]
        if second.isdigit() and len(second) == 1:
            return self._call_area(first, second)
        # `KH6/W1AW` or `W1AW/KH6`: the shorter part names the place (the first one on a tie).
        where = first if len(first) <= len(second) else second
        return self._by_prefix(where)

    def _call_area(self, call: str, digit: str) -> Entity | None:
        """`W1AW/7`: same entity, other call area (which may change the zone); keep it only if the
        entity stays the same, because `/digit` never moves a station to another country."""
        home = self._exact.get(call) or self._by_prefix(call)
        match = re.search(r"\d", call)
        if home is None or match is None:
            return home
        moved = self._by_prefix(call[: match.start()] + digit + call[match.end():])
        return moved if moved is not None and moved.name == home.name else home


def _normalize(call: str) -> str:
    """Upper-case, drop skimmer/SSID suffixes (`DK9IP-#`, `KM3T-2-#`, `G4ABC-1`) and junk characters."""
    call = call.strip().upper()
    dash = call.find("-")
    if dash >= 0:
        call = call[:dash]
    return _CALL_CHARS.sub("", call)


def parse_cty(text: str, dxcc_numbers: dict[str, int] | None = None) -> CtyTable:
    """Parse cty.dat text; raise InputError naming the record for anything malformed."""
    numbers = load_dxcc_numbers() if dxcc_numbers is None else dxcc_numbers
    entities: list[Entity] = []
    prefixes: dict[str, Entity] = {}
    exact: dict[str, Entity] = {}
    variants: dict[tuple[object, ...], Entity] = {}  # share identical override entities
    line_no = 1
    for record in text.split(";"):
        content = record.strip()
        start_line = line_no + record[: len(record) - len(record.lstrip())].count("\n")
        line_no += record.count("\n")
        if not content:
            continue
        header, _, body = content.partition("\n")
        entity = _parse_header(header.strip(), start_line, numbers)
        entities.append(entity)
        for raw in re.sub(r"\s+", "", body).split(","):
            if not raw:
                continue
            m = _TOKEN.fullmatch(raw)
            target = _with_overrides(entity, m.group(3), variants) if m else None
            if m is None or target is None:
                raise InputError(f"cty.dat record at line {start_line} ({entity.name}): bad entry {raw!r}")
            (exact if m.group(1) else prefixes)[m.group(2)] = target
    if len(entities) < MIN_ENTITIES:
        raise InputError(f"cty.dat holds {len(entities)} entities; a real one has about 340 "
                         f"(at least {MIN_ENTITIES} expected)")
    return CtyTable(entities, prefixes, exact)


def _parse_header(header: str, line_no: int, numbers: dict[str, int]) -> Entity:
    fields = [f.strip() for f in header.split(":")]
    if len(fields) < 8 or fields[8:] not in ([], [""]):
        raise InputError(f"cty.dat line {line_no}: expected 'Name: CQ: ITU: Cont: Lat: Lon: UTC: Prefix:', "
                         f"got {header[:80]!r}")
    name, cq, itu, cont, lat, lon, utc, primary = fields[:8]
    try:
        return Entity(name=name, dxcc=numbers.get(primary), cont=cont, cqz=int(cq), ituz=int(itu),
                      lat=float(lat), lon=_east(lon), prefix=primary.lstrip("*"),
                      utc_offset=_east(utc), wae_only=primary.startswith("*"))
    except ValueError as exc:
        raise InputError(f"cty.dat line {line_no} ({name}): bad number in header: {exc}") from exc


def _with_overrides(base: Entity, tail: str, variants: dict[tuple[object, ...], Entity]) -> Entity | None:
    """`base` changed by the `(cq)[itu]<lat/lon>{cont}~utc~` overrides in `tail`; None if malformed."""
    if not tail:
        return base
    changes: dict[str, object] = {}
    pos = 0
    for m in _OVERRIDE.finditer(tail):
        if m.start() != pos:
            return None
        pos = m.end()
        cq, itu, lat, lon, cont, utc = m.groups()
        if cq:
            changes["cqz"] = int(cq)
        if itu:
            changes["ituz"] = int(itu)
        if lat:
            changes["lat"], changes["lon"] = float(lat), _east(lon)
        if cont:
            changes["cont"] = cont
        if utc:
            changes["utc_offset"] = _east(utc)
    if pos != len(tail):
        return None
    key = (id(base), *sorted(changes.items()))
    if key not in variants:
        variants[key] = replace(base, **changes)  # type: ignore[arg-type]
    return variants[key]


def _east(west_positive: str) -> float:
    """cty.dat counts longitude and UTC offset positive to the west; flip (and avoid -0.0)."""
    return -float(west_positive) or 0.0


@functools.cache
def load_dxcc_numbers() -> dict[str, int]:
    """Primary prefix (as in cty.dat, with `*`) -> ADIF DXCC entity number."""
    numbers: dict[str, int] = {}
    for line in DXCC_NUMBERS.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            prefix, number, _name = line.split("\t", 2)
            numbers[prefix] = int(number)
    return numbers


def read_cty(path: Path) -> CtyTable:
    """Parse the cty.dat at `path`."""
    return _parse_file(path)[0]


def _parse_file(path: Path) -> tuple[CtyTable, bytes]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read cty.dat {path}: {exc.strerror or exc}") from exc
    try:
        return parse_cty(decode_text(data)), data
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from exc


@functools.cache
def load_default() -> CtyTable:
    """The cty.dat bundled with hamsrv (parsed once per process)."""
    return read_cty(BUNDLED_CTY)


def load(data_dir: Path) -> CtyTable:
    """The installed `data_dir/cty.dat` when there is one, else the bundled copy."""
    installed = data_dir / "cty.dat"
    return read_cty(installed) if installed.exists() else load_default()


def install_cty(source: Path, data_dir: Path) -> CtyTable:
    """Validate `source` and atomically replace `data_dir/cty.dat` with it; a bad file raises
    InputError and leaves the installed one untouched."""
    table, data = _parse_file(source)
    data_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".cty-", suffix=".tmp", dir=data_dir)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, data_dir / "cty.dat")
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return table
