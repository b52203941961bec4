"""ADIF record fields -> a row for the `qsos` table (or a reason to reject it), and back. No I/O.

Columns that have a type get clean python values ready for binary COPY; every other non-empty field
goes into `extra` under its original upper-case name, so an export gives back what was imported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from hamsrv.cty import CtyTable, Entity, load_default
from hamsrv.ingest import _fastadi
from hamsrv.model import (
    BANDS,
    MAX_FIELD_CHARS,
    MAX_FIELDS,
    QSO_COLUMNS,
    Qso,
    band_for_mhz,
    normalize_band,
    normalize_call,
    valid_grid,
)


@dataclass(frozen=True, slots=True)
class Reject:
    """Why a record cannot become a QSO; `field` is the ADIF field at fault."""

    field: str
    reason: str


class _Invalid(Exception):
    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason


# MODE -> its SUBMODEs, ADIF 3.1.6 (FACTS 1.6; farmergreg/spec mode_gen.go). A MODE that is not an
# active mode but is one of these submodes (PSK31, JT65A, C4FM, USB, FT4 ...) is imported as
# MODE=parent, SUBMODE=it.
_SUBMODES = {
    "CHIP": "CHIP64 CHIP128", "CW": "PCW", "DIGITALVOICE": "C4FM DMR DSTAR FREEDV M17",
    "DOMINO": "DOM-M DOM4 DOM5 DOM8 DOM11 DOM16 DOM22 DOM44 DOM88 DOMINOEX DOMINOF",
    "DYNAMIC": "VARA HF|VARA SATELLITE|VARA FM 1200|VARA FM 9600", "FSK": "SCAMP_FAST SCAMP_SLOW SCAMP_VSLOW",
    "HELL": "FMHELL FSKH105 FSKH245 FSKHELL HELL80 HELLX5 HELLX9 HFSK PSKHELL SLOWHELL",
    "ISCAT": "ISCAT-A ISCAT-B", "JT4": "JT4A JT4B JT4C JT4D JT4E JT4F JT4G",
    "JT65": "JT65A JT65B JT65B2 JT65C JT65C2",
    "JT9": "JT9-1|JT9-2|JT9-5|JT9-10|JT9-30|JT9A|JT9B|JT9C|JT9D|JT9E|JT9E FAST|JT9F|JT9F FAST|JT9G|"
           "JT9G FAST|JT9H|JT9H FAST",
    "MFSK": "FSQCALL FST4 FST4W FT4 JS8 JTMS MFSK4 MFSK8 MFSK11 MFSK16 MFSK22 MFSK31 MFSK32 MFSK64 "
            "MFSK64L MFSK128 MFSK128L Q65",
    "MTONE": "SCAMP_OO SCAMP_OO_SLW",
    "OLIVIA": "OLIVIA 4/125|OLIVIA 4/250|OLIVIA 8/250|OLIVIA 8/500|OLIVIA 16/500|OLIVIA 16/1000|OLIVIA 32/1000",
    "OPERA": "OPERA-BEACON OPERA-QSO", "PAC": "PAC2 PAC3 PAC4", "PAX": "PAX2",
    "PSK": "8PSK125 8PSK125F 8PSK125FL 8PSK250 8PSK250F 8PSK250FL 8PSK500 8PSK500F 8PSK1000 8PSK1000F "
           "8PSK1200F FSK31 PSK10 PSK31 PSK63 PSK63F PSK63RC4 PSK63RC5 PSK63RC10 PSK63RC20 PSK63RC32 "
           "PSK125 PSK125C12 PSK125R PSK125RC10 PSK125RC12 PSK125RC16 PSK125RC4 PSK125RC5 PSK250 PSK250C6 "
           "PSK250R PSK250RC2 PSK250RC3 PSK250RC5 PSK250RC6 PSK250RC7 PSK500 PSK500C2 PSK500C4 PSK500R "
           "PSK500RC2 PSK500RC3 PSK500RC4 PSK800C2 PSK800RC2 PSK1000 PSK1000C2 PSK1000R PSK1000RC2 "
           "PSKAM10 PSKAM31 PSKAM50 PSKFEC31 QPSK31 QPSK63 QPSK125 QPSK250 QPSK500 SIM31",
    "QRA64": "QRA64A QRA64B QRA64C QRA64D QRA64E", "ROS": "ROS-EME ROS-HF ROS-MF", "RTTY": "ASCI",
    "SSB": "LSB USB",
    "THOR": "THOR-M THOR4 THOR5 THOR8 THOR11 THOR16 THOR22 THOR25X4 THOR50X1 THOR50X2 THOR100",
    "THRB": "THRBX THRBX1 THRBX2 THRBX4 THROB1 THROB2 THROB4", "TOR": "AMTORFEC GTOR NAVTEX SITORB",
}
ACTIVE_MODES = frozenset(_SUBMODES) | {
    "AM", "ARDOP", "ATV", "CLO", "CONTESTI", "FAX", "FM", "FSK441", "FT8", "JT44", "JT6M", "MSK144", "MT63",
    "PKT", "PSK2K", "Q15", "RTTYM", "SSTV", "T10", "V4", "VOI", "WINMOR", "WSPR"}
SUBMODE_PARENT = {sub: mode for mode, subs in _SUBMODES.items()
                  for sub in (subs.split("|") if "|" in subs else subs.split())}

_SENT = frozenset("YNRQI")   # *_SENT enumeration
_RCVD = frozenset("YNRIV")   # *_RCVD enumeration (V is import-only)

_ONE_DAY = timedelta(days=1)
MAX_MODE_CHARS = 64  # MODE is part of the dedupe index, whose entries PostgreSQL caps at ~2.7 kB


def _text(name: str, value: str | None) -> str | None:
    return (value.strip() or None) if value else None


def _upper(name: str, value: str | None) -> str | None:
    return (value.strip().upper() or None) if value else None


def _date(name: str, value: str | None, required: bool = False) -> date | None:
    """ADIF Date: YYYYMMDD, year 1930 or later."""
    if value is None or not (value := value.strip()):
        if required:
            raise _Invalid(name, "missing")
        return None
    if len(value) != 8 or not value.isdigit() or not value.isascii():
        raise _Invalid(name, f"{value[:20]!r} is not a date (YYYYMMDD)")
    year = int(value[:4])
    if year < 1930:
        raise _Invalid(name, f"{value!r}: ADIF dates start in 1930")
    try:
        return date(year, int(value[4:6]), int(value[6:]))
    except ValueError:
        raise _Invalid(name, f"{value!r} is not a valid date") from None


def _time(name: str, value: str | None, required: bool = False) -> time | None:
    """ADIF Time: HHMM or HHMMSS, UTC."""
    if value is None or not (value := value.strip()):
        if required:
            raise _Invalid(name, "missing")
        return None
    if len(value) not in (4, 6) or not value.isdigit() or not value.isascii():
        raise _Invalid(name, f"{value[:20]!r} is not a time (HHMM or HHMMSS)")
    try:
        return time(int(value[:2]), int(value[2:4]), int(value[4:] or 0))
    except ValueError:
        raise _Invalid(name, f"{value!r} is not a valid time") from None


def _mhz(name: str, value: str | None) -> float | None:
    if value is None or not (value := value.strip()):
        return None
    if not value.isascii() or not value.replace(".", "", 1).isdigit():  # digits and at most one '.'
        raise _Invalid(name, f"{value[:20]!r} is not a frequency in MHz")
    mhz = float(value)
    if not math.isfinite(mhz):  # 309 digits and more: `inf`, which the firehose could not round
        raise _Invalid(name, f"{value[:20]!r}... is not a frequency in MHz")
    return mhz


def _band(name: str, value: str | None) -> str | None:
    """The canonical band, or None when not given (the band then comes from the frequency)."""
    if value is None or not value.strip():
        return None
    band = normalize_band(value)
    if band is None:
        raise _Invalid(name, f"{value[:20]!r} is not an ADIF band")
    return band


def _call(name: str, value: str | None, required: bool = False) -> str | None:
    """Letters, digits and '/'-separated parts (W1AW, VP2E/W1AW/P), with a letter and a digit."""
    if value is None or not (value := value.strip().upper()):
        if required:
            raise _Invalid(name, "missing")
        return None
    call = normalize_call(value)
    if call is None:
        raise _Invalid(name, f"{value[:40]!r} is not a callsign")
    return call


def _status(allowed: frozenset[str]) -> Callable[[str, str | None], str | None]:
    def status(name: str, value: str | None) -> str | None:
        if value is None or not (value := value.strip().upper()):
            return None
        if value not in allowed:
            raise _Invalid(name, f"{value[:20]!r} is not one of {', '.join(sorted(allowed))}")
        return value
    return status


def _dxcc(name: str, value: str | None) -> int | None:
    if value is None or not (value := value.strip()):
        return None
    if not value.isdigit() or not value.isascii() or len(value) > 4:
        raise _Invalid(name, f"{value[:20]!r} is not a DXCC entity number")
    return int(value)


def _mode(mode_text: str | None, submode_text: str | None) -> tuple[str | None, str | None]:
    """Deprecated and submode-as-MODE values become MODE+SUBMODE (FACTS 1.6: PSK31 -> PSK/PSK31)."""
    mode = (mode_text.strip().upper() or None) if mode_text else None
    submode = (submode_text.strip().upper() or None) if submode_text else None
    if mode is None:
        return (SUBMODE_PARENT.get(submode) if submode else None), submode
    if mode not in ACTIVE_MODES and mode in SUBMODE_PARENT:
        return SUBMODE_PARENT[mode], submode or mode
    return mode, submode


def normalize(fields: Mapping[str, str], *, lotw_report: bool = False, check_nul: bool = True) -> Qso | Reject:
    """A row for `qsos`, or the reason the record cannot be one. `fields` has upper-case names (as the
    parsers give them). With `lotw_report`, QSL_RCVD/QSLRDATE are LoTW confirmations (FACTS 3.2).
    `check_nul=False` skips the NUL scan for callers that know their input has none (bulk import)."""
    if check_nul:  # PostgreSQL text cannot hold NUL
        for name, value in fields.items():
            if "\x00" in value:
                return Reject(name, "contains a NUL character")
    if len(fields) > MAX_FIELDS:
        return Reject(list(fields)[MAX_FIELDS], f"a QSO holds at most {MAX_FIELDS} fields")
    for name, value in fields.items():
        if len(value) > MAX_FIELD_CHARS:
            return Reject(name, f"longer than {MAX_FIELD_CHARS} characters")
    try:
        row = _checked(_normalize(fields, lotw_report), fields, lotw_report)
    except _Invalid as exc:
        return Reject(exc.field, exc.reason)
    return _with_entity(row)


_FUTURE_SLACK = timedelta(days=1)  # clocks and time zones: a QSO up to a day ahead is believed
_EDGE_MHZ = 1e-5  # band edges are met within 10 Hz (the ADIF test file logs 54.000001 MHz as 6m)
_UNIT_SLIPS = (1e-3, 1e-6)  # FREQ written in kHz or Hz (old Cloudlog exports write Hz)
# LoTW reports a QSO uploaded with only a mode group as MODE=DATA/PHONE/IMAGE (FACTS 3.2): no ADIF
# mode; in a LoTW report it is kept as LoTW's own field APP_LOTW_MODEGROUP, with no MODE.
_LOTW_MODE_GROUPS = frozenset({"DATA", "PHONE", "IMAGE"})
_BAND_EDGES = {name: (lo, hi) for name, lo, hi in BANDS}


def _in_band(mhz: float, band: str) -> bool:
    lo, hi = _BAND_EDGES[band]
    return lo - _EDGE_MHZ <= mhz <= hi + _EDGE_MHZ


def _checked(row: Qso, fields: Mapping[str, str], lotw_report: bool) -> Qso:
    """What a logger checks across fields (the same for the JSON API and imports); a FREQ given in
    kHz or Hz beside a BAND it then fits is read as such."""
    if row.mode is not None and len(row.mode) > MAX_MODE_CHARS:
        raise _Invalid("MODE", f"longer than {MAX_MODE_CHARS} characters")
    if row.mode is not None and row.mode not in ACTIVE_MODES:
        if not (lotw_report and row.mode in _LOTW_MODE_GROUPS and row.submode is None):
            raise _Invalid("MODE", f"{row.mode[:20]!r} is not an ADIF mode")
        row.extra.setdefault("APP_LOTW_MODEGROUP", row.mode)
        row = row._replace(mode=None)
    if row.submode is not None:
        parent = SUBMODE_PARENT.get(row.submode)
        if parent is None:
            raise _Invalid("SUBMODE", f"{row.submode[:20]!r} is not an ADIF submode")
        if parent != row.mode:
            raise _Invalid("SUBMODE", f"{row.submode} is a submode of {parent}, not of {row.mode}")
    for band_field, freq_field in (("BAND", "FREQ"), ("BAND_RX", "FREQ_RX")):
        band, freq = getattr(row, band_field.lower()), getattr(row, freq_field.lower())
        if freq is None or (band is not None and _in_band(freq, band)):
            continue
        if band is None:
            if band_field == "BAND":  # FREQ_RX alone may be anywhere (cross-band, satellites)
                raise _Invalid("FREQ", f"{freq:g} MHz is not in an amateur band; give the BAND")
            continue
        scaled = next((freq * f for f in _UNIT_SLIPS if _in_band(freq * f, band)), None)
        if scaled is None or not fields.get(band_field, "").strip():
            raise _Invalid(freq_field, f"{freq:g} MHz is not in the {band} band")
        row = row._replace(**{freq_field.lower(): round(scaled, 6)})
    if row.band is None:
        raise _Invalid("BAND", "a QSO needs a BAND or a FREQ")
    for name in ("GRIDSQUARE", "MY_GRIDSQUARE"):
        value = getattr(row, name.lower())
        if value is not None and not valid_grid(value):
            raise _Invalid(name, f"{value[:20]!r} is not a Maidenhead locator (like FN31 or FN31pr)")
    if row.end_at is not None and row.end_at < row.start_at:
        raise _Invalid("TIME_OFF", "the QSO ends before it starts")
    if row.start_at > datetime.now(UTC) + _FUTURE_SLACK:
        raise _Invalid("QSO_DATE", "the QSO is more than a day in the future")
    return row


_ENTITIES: CtyTable | None = None


def use_entities(table: CtyTable | None) -> None:
    """The cty.dat table that fills DXCC, COUNTRY, CONT and CQZ (the server's, with the data dir's
    cty.dat); None goes back to the bundled one. The import fast path gets the same table."""
    global _ENTITIES
    table = table or load_default()
    if table is _ENTITIES:
        return
    _ENTITIES = table
    _ENTITY_OF.clear()
    exact, prefixes, longest = table.plain_tables()
    _fastadi.set_entities({k: _entity_text(e) for k, e in exact.items()},
                          {k: _entity_text(e) for k, e in prefixes.items()}, longest)


def _entity_text(entity: Entity) -> str:
    """An entity as the fast path reads it ("" for one without a DXCC number: nothing to fill)."""
    return "" if entity.dxcc is None else f"{entity.dxcc}\t{entity.cont}\t{entity.cqz}\t{entity.name}"


def _entity(call: str) -> Entity | None:
    if _ENTITIES is None:
        use_entities(None)
    assert _ENTITIES is not None
    return _ENTITIES.lookup(call)


def _with_entity(row: Qso) -> Qso:
    """DXCC, COUNTRY, CONT and CQZ from cty.dat where the record has none, as spots get them. A DXCC
    the record carries is kept, and then only fills from the same entity are added."""
    extra = row.extra
    if row.dxcc is not None and "COUNTRY" in extra and "CONT" in extra and "CQZ" in extra:
        return row
    entity = _ENTITY_OF[row.call]
    if entity is None or entity.dxcc is None or (row.dxcc is not None and row.dxcc != entity.dxcc):
        return row
    extra.setdefault("COUNTRY", entity.name)
    extra.setdefault("CONT", entity.cont)
    extra.setdefault("CQZ", str(entity.cqz))
    return row._replace(dxcc=entity.dxcc) if row.dxcc is None else row


class _Memo(dict[Any, Any]):
    """One field's conversion with its results remembered. Imports repeat most values (dates, bands,
    modes, reports, statuses), so most conversions become one dict lookup; invalid values raise and
    are not remembered. Cleared when full, so memory stays bounded (at most a few MB in all)."""

    def __init__(self, name: str, convert: Callable[[str, Any], object]) -> None:
        super().__init__()
        self.name = name
        self.convert = convert

    def __missing__(self, raw: Any) -> Any:
        value = self.convert(self.name, raw)
        if len(self) >= 8192:
            self.clear()
        self[raw] = value
        return value


_ENTITY_OF = _Memo("CALL", lambda _, call: _entity(call))


def _midnight(name: str, value: str | None, required: bool = False) -> datetime | None:
    """The start of an ADIF Date in UTC: a QSO's time is then midnight + its time of day."""
    day = _date(name, value, required)
    return None if day is None else datetime(day.year, day.month, day.day, tzinfo=UTC)


_HHMM = {f"{h:02d}{m:02d}": timedelta(hours=h, minutes=m) for h in range(24) for m in range(60)}
_SS = {"": timedelta(0)} | {f"{s:02d}": timedelta(seconds=s) for s in range(60)}


def _time_of_day(name: str, value: str | None, required: bool = False) -> timedelta | None:
    """Time since midnight. Times rarely repeat, so instead of a memo: two table lookups for the
    HHMM[SS] loggers write, the full check for anything else."""
    if value is not None:
        hhmm, ss = _HHMM.get(value[:4]), _SS.get(value[4:])
        if hhmm is not None and ss is not None:
            return hhmm + ss
    clock = _time(name, value, required)
    return None if clock is None else timedelta(hours=clock.hour, minutes=clock.minute, seconds=clock.second)


def _band_of(mhz: float | None) -> str | None:
    return band_for_mhz(mhz) if mhz is not None else None


def _required(convert: Callable[[str, str | None, bool], object]) -> Callable[[str, str | None], object]:
    return lambda name, value: convert(name, value, True)


_QSO_DATE, _QSO_DATE_OFF = _Memo("QSO_DATE", _required(_midnight)), _Memo("QSO_DATE_OFF", _midnight)
_BAND, _BAND_RX = _Memo("BAND", _band), _Memo("BAND_RX", _band)
_MODES = _Memo("MODE", lambda _, mode_and_submode: _mode(*mode_and_submode))

def _column(name: str, convert: Callable[[str, str | None], object],
            remember: bool = True) -> tuple[str, tuple[int, Callable[[str | None], object]]]:
    field = name.upper()
    conversion = _Memo(field, convert).__getitem__ if remember else partial(convert, field)
    return field, (QSO_COLUMNS.index(name), conversion)


# Columns filled from one field each: field -> (column index, conversion of the raw value). A grid
# square rarely repeats (and _text is cheap), so it is not remembered.
_SENT_STATUS, _RCVD_STATUS = _status(_SENT), _status(_RCVD)
_ONE_FIELD = dict(_column(*spec) for spec in (
    ("rst_sent", _text), ("rst_rcvd", _text), ("gridsquare", _text, False), ("my_gridsquare", _text),
    ("station_callsign", _upper), ("operator", _upper), ("dxcc", _dxcc),
    ("qsl_sent", _SENT_STATUS), ("qsl_rcvd", _RCVD_STATUS), ("qslsdate", _date), ("qslrdate", _date),
    ("lotw_qsl_sent", _SENT_STATUS), ("lotw_qsl_rcvd", _RCVD_STATUS), ("lotw_qslsdate", _date),
    ("lotw_qslrdate", _date), ("eqsl_qsl_sent", _SENT_STATUS), ("eqsl_qsl_rcvd", _RCVD_STATUS),
    ("eqsl_qslsdate", _date), ("eqsl_qslrdate", _date)))
# Fields that need other fields to become columns (normalized below); QSO_DATE_OFF only when TIME_OFF is set.
_CROSS_FIELD = frozenset({"CALL", "QSO_DATE", "TIME_ON", "TIME_OFF", "QSO_DATE_OFF", "BAND", "BAND_RX",
                          "FREQ", "FREQ_RX", "MODE", "SUBMODE"})
_QSL_RCVD, _QSLRDATE, _LOTW_QSL_RCVD, _LOTW_QSLRDATE = (
    QSO_COLUMNS.index(name) for name in ("qsl_rcvd", "qslrdate", "lotw_qsl_rcvd", "lotw_qslrdate"))


def _normalize(fields: Mapping[str, str], lotw_report: bool) -> Qso:
    get = fields.get
    call = _call("CALL", get("CALL"), required=True)  # too varied to be worth remembering
    start_day = _QSO_DATE[get("QSO_DATE")]
    credit = _is_dxcc_credit(fields)
    time_on = _time_of_day("TIME_ON", get("TIME_ON"), required=not credit)
    if time_on is None:  # a LoTW DXCC credit record: the day is all it knows
        time_on = timedelta(0)
    time_off = _time_of_day("TIME_OFF", get("TIME_OFF"))
    end_day = _QSO_DATE_OFF[get("QSO_DATE_OFF")]
    end_at = None
    if time_off is not None:
        if end_day is None:  # without QSO_DATE_OFF a QSO is shorter than a day (FACTS 1.4)
            if time_off < time_on:
                if start_day.date() == date.max:
                    raise _Invalid("TIME_OFF", "the QSO would end after 9999-12-31")
                end_day = start_day + _ONE_DAY
            else:
                end_day = start_day
        end_at = end_day + time_off
    freq = _mhz("FREQ", get("FREQ"))  # frequencies vary too much to be worth remembering
    freq_rx = _mhz("FREQ_RX", get("FREQ_RX"))
    mode, submode = _MODES[get("MODE"), get("SUBMODE")]
    row: list[object] = [
        call, start_day + time_on, end_at, _BAND[get("BAND")] or _band_of(freq),
        _BAND_RX[get("BAND_RX")] or _band_of(freq_rx), mode, submode, freq, freq_rx, *_EMPTY_TAIL]
    extra = {}
    one_field = _ONE_FIELD.get
    for name, value in fields.items():
        slot = one_field(name)
        if slot is not None:
            row[slot[0]] = slot[1](value)
        elif value and name not in _CROSS_FIELD:
            extra[name] = value
    if end_at is None and get("QSO_DATE_OFF"):
        extra["QSO_DATE_OFF"] = fields["QSO_DATE_OFF"]
    if lotw_report and row[_LOTW_QSL_RCVD] is None and row[_LOTW_QSLRDATE] is None:
        row[_LOTW_QSL_RCVD], row[_LOTW_QSLRDATE] = row[_QSL_RCVD], row[_QSLRDATE]
        row[_QSL_RCVD] = row[_QSLRDATE] = None
    if credit and not get("TIME_ON"):
        extra.setdefault(CREDIT_NOTE_FIELD, CREDIT_NOTE)
        if row[_LOTW_QSL_RCVD] is None:  # DXCC credit is granted for LoTW-confirmed QSOs only
            row[_LOTW_QSL_RCVD] = "Y"
    row[-1] = extra
    return tuple.__new__(Qso, row)


# LoTW's "DXCC QSL Card Report" (qslcards.php) lists credited QSOs without TIME_ON and MODE (only the
# mode group): what it can say is a confirmation by call, band, mode group and date.
_CREDIT_FIELDS = ("APP_LOTW_CREDIT_GRANTED", "APP_LOTW_DXCC_PROCESSED_DTG", "APP_LOTW_DXCC_APPLICATION_NR")
CREDIT_NOTE_FIELD = "APP_HAMSRV_NOTE"
CREDIT_NOTE = "from a LoTW DXCC credit report: no time of day given, stored as 00:00 UTC"


def _is_dxcc_credit(fields: Mapping[str, str]) -> bool:
    return not fields.get("TIME_ON") and any(fields.get(name) for name in _CREDIT_FIELDS)


_EMPTY_TAIL = (None,) * (len(QSO_COLUMNS) - QSO_COLUMNS.index("rst_sent"))


def _adif_date(value: date) -> str:
    return f"{value.year:04d}{value.month:02d}{value.day:02d}"


def _adif_time(value: datetime) -> str:
    return f"{value.hour:02d}{value.minute:02d}{value.second:02d}"  # 3x faster than strftime


def _adif_number(value: float) -> str:
    """Shortest text that reads back as the same float, without an exponent (ADIF Number)."""
    text = repr(value)
    return format(Decimal(text), "f") if "e" in text or "E" in text else text


_TEXT_COLUMNS = ("band", "band_rx", "mode", "submode", "rst_sent", "rst_rcvd", "gridsquare", "my_gridsquare",
                 "station_callsign", "operator", "qsl_sent", "qsl_rcvd", "lotw_qsl_sent", "lotw_qsl_rcvd",
                 "eqsl_qsl_sent", "eqsl_qsl_rcvd")
_DATE_COLUMNS = ("qslsdate", "qslrdate", "lotw_qslsdate", "lotw_qslrdate", "eqsl_qslsdate", "eqsl_qslrdate")


def to_fields(row: Qso) -> dict[str, str]:
    """ADIF fields for export: normalize(to_fields(row)) == row. Times are written in UTC."""
    start = row.start_at.astimezone(UTC)
    fields = {"CALL": row.call, "QSO_DATE": _adif_date(start), "TIME_ON": _adif_time(start)}
    if row.end_at is not None:
        end = row.end_at.astimezone(UTC)
        fields["QSO_DATE_OFF"] = _adif_date(end)
        fields["TIME_OFF"] = _adif_time(end)
    for column in _TEXT_COLUMNS:
        value = getattr(row, column)
        if value is not None:
            fields[column.upper()] = value
    if row.freq is not None:
        fields["FREQ"] = _adif_number(row.freq)
    if row.freq_rx is not None:
        fields["FREQ_RX"] = _adif_number(row.freq_rx)
    if row.dxcc is not None:
        fields["DXCC"] = str(row.dxcc)
    for column in _DATE_COLUMNS:
        value = getattr(row, column)
        if value is not None:
            fields[column.upper()] = _adif_date(value)
    for name, value in row.extra.items():
        fields.setdefault(name, value)
    return fields
