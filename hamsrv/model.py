"""Domain values shared by every part of hamsrv: bands, spots. No I/O here."""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple

# ADIF 3.1.6 band enumeration, edges in MHz, inclusive (FACTS 1.5). Sorted by lower edge.
BANDS: tuple[tuple[str, float, float], ...] = (
    ("2190m", 0.1357, 0.1378), ("630m", 0.472, 0.479), ("560m", 0.501, 0.504),
    ("160m", 1.8, 2.0), ("80m", 3.5, 4.0), ("60m", 5.06, 5.45), ("40m", 7.0, 7.3),
    ("30m", 10.1, 10.15), ("20m", 14.0, 14.35), ("17m", 18.068, 18.168), ("15m", 21.0, 21.45),
    ("12m", 24.89, 24.99), ("10m", 28.0, 29.7), ("8m", 40.0, 45.0), ("6m", 50.0, 54.0),
    ("5m", 54.000001, 69.9), ("4m", 70.0, 71.0), ("2m", 144.0, 148.0), ("1.25m", 222.0, 225.0),
    ("70cm", 420.0, 450.0), ("33cm", 902.0, 928.0), ("23cm", 1240.0, 1300.0),
    ("13cm", 2300.0, 2450.0), ("9cm", 3300.0, 3500.0), ("6cm", 5650.0, 5925.0),
    ("3cm", 10000.0, 10500.0), ("1.25cm", 24000.0, 24250.0), ("6mm", 47000.0, 47200.0),
    ("4mm", 75500.0, 81000.0), ("2.5mm", 119980.0, 123000.0), ("2mm", 134000.0, 149000.0),
    ("1mm", 241000.0, 250000.0), ("submm", 300000.0, 7500000.0),
)
_LOWER_EDGES = [lo for _, lo, _ in BANDS]
BAND_NAMES = frozenset(name for name, _, _ in BANDS)


# The highest frequency any ADIF band reaches (submm, 7,500,000 MHz), in kHz.
MAX_KHZ = 7.5e9


def valid_khz(value: object) -> float | None:
    """The one frequency check for every way a frequency enters hamsrv (cluster lines, DX commands, JSON,
    ADIF, QSO notifications): a finite number above 0 and at most MAX_KHZ, as a float, else None.
    Numbers of 309 digits and more are `inf` after float(), and `round(inf)` raises: refuse them here."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    khz = float(value) if not isinstance(value, int) or abs(value) < 10**18 else math.inf
    return khz if math.isfinite(khz) and 0 < khz <= MAX_KHZ else None


def band_for_mhz(mhz: float) -> str | None:
    """The ADIF band holding `mhz`, or None when it is outside every band."""
    i = bisect.bisect_right(_LOWER_EDGES, mhz) - 1
    if i >= 0:
        name, lo, hi = BANDS[i]
        if lo <= mhz <= hi:
            return name
    return None


def normalize_band(text: str) -> str | None:
    """ADIF band names are case-insensitive; return the canonical lower-case name or None."""
    name = text.strip().lower()
    return name if name in BAND_NAMES else None


@dataclass(slots=True)
class Spot:
    """One DX spot as it travels through the firehose.

    `freq` is in kHz (as cluster lines carry it); `time` is timezone-aware UTC. Enrichment fills
    band/mode/dxcc/cont/cq fields; `id` is the ring sequence number, 0 until the ring assigns it.
    """

    spotter: str
    freq: float
    dx: str
    comment: str
    time: datetime
    band: str | None = None
    mode: str | None = None
    dxcc: int | None = None
    country: str | None = None
    cont: str | None = None
    cqz: int | None = None
    spotter_dxcc: int | None = None
    spotter_cont: str | None = None
    spotter_grid: str | None = None
    snr: int | None = None
    wpm: int | None = None
    skimmer: bool = False
    source: str = "cluster"
    origin: str | None = None
    id: int = 0
    extra: dict[str, str] = field(default_factory=dict)
    verified: bool = False  # the spotter signed in to this node with a password or token


def bounded_int(text: str, hi: int) -> int | None:
    """`text` as a whole number from 0 to `hi`, else None. The digits are counted before int(), which
    refuses numbers over 4,300 digits with a ValueError (and would spend time on long ones)."""
    digits = text.strip().lstrip("0") or "0"
    if not (digits.isascii() and digits.isdecimal()) or len(digits) > len(str(hi)):
        return None
    value = int(digits)
    return value if value <= hi else None


# C0 controls, DEL and C1 controls (0x80-0x9F, which some terminals obey as escape sequences): never
# taken from a peer into a spot, never sent to a user's terminal.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def without_control(text: str, replacement: str = "") -> str:
    """`text` with every control character replaced (the one rule, for input and output alike)."""
    return _CONTROL.sub(replacement, text)


def decode_text(data: bytes) -> str:
    """UTF-8 when the bytes are UTF-8, else Latin-1: old cluster nodes and hand-edited files use it."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# A callsign as written on the air: letters and digits in '/'-separated parts (W1AW, VP2E/W1AW/P), with
# a letter and a digit somewhere. 32 characters keeps long portable forms that real logs hold.
_CALL = re.compile(r"(?=.*[0-9])(?=.*[A-Z])[A-Z0-9]+(?:/[A-Z0-9]+)*")
MAX_CALL_LEN = 32


def normalize_call(text: str) -> str | None:
    """Upper-cased callsign, or None when `text` cannot be one (the one rule for every part of hamsrv)."""
    call = text.strip().upper()
    return call if len(call) <= MAX_CALL_LEN and _CALL.fullmatch(call) else None


# A callsign as cluster nodes write it in spots and PC frames: the on-air form plus an SSID (GB7DJK-1) or
# a skimmer mark (DL8LAS-#), 20 characters at most as DXSpider allows.
_CLUSTER_CALL = re.compile(r"(?=[A-Z0-9/#-]*[0-9])(?=[A-Z0-9/#-]*[A-Z])[A-Z0-9][A-Z0-9/#-]{0,19}")
_SSID = re.compile(r"-\d{1,2}$")  # login calls may carry an SSID (G0ABC-2); a DX call does not


def is_cluster_call(text: str) -> bool:
    """Whether `text` (upper case) is a callsign as cluster lines carry it."""
    return _CLUSTER_CALL.fullmatch(text) is not None


def without_ssid(call: str) -> str:
    """`call` without its SSID (G0ABC-2 -> G0ABC): the account a cluster login belongs to."""
    return _SSID.sub("", call)


def login_call(text: str) -> str | None:
    """The upper-cased login callsign (SSID allowed), or None when it cannot be one."""
    base = normalize_call(without_ssid(text))
    return None if base is None else text.strip().upper()


class Qso(NamedTuple):
    """One row of `qsos` (names follow ADIF, lower case), as a tuple so it goes to binary COPY as is."""

    call: str
    start_at: datetime
    end_at: datetime | None
    band: str | None
    band_rx: str | None
    mode: str | None
    submode: str | None
    freq: float | None
    freq_rx: float | None
    rst_sent: str | None
    rst_rcvd: str | None
    gridsquare: str | None
    my_gridsquare: str | None
    station_callsign: str | None
    operator: str | None
    dxcc: int | None
    qsl_sent: str | None
    qsl_rcvd: str | None
    qslsdate: date | None
    qslrdate: date | None
    lotw_qsl_sent: str | None
    lotw_qsl_rcvd: str | None
    lotw_qslsdate: date | None
    lotw_qslrdate: date | None
    eqsl_qsl_sent: str | None
    eqsl_qsl_rcvd: str | None
    eqsl_qslsdate: date | None
    eqsl_qslrdate: date | None
    extra: dict[str, str]


QSO_COLUMNS: tuple[str, ...] = Qso._fields


# ADIF 3.1.6 QSO field names (adif.org.uk "QSO Fields", import-only ones included). Anything else a
# logger writes is an application field `APP_{PROGRAM}_{NAME}` or a user-defined field (USERDEFn in
# the header names it): imports keep those, the JSON API takes them as `app_*` keys.
ADIF_QSO_FIELDS = frozenset("""
ADDRESS ADDRESS_INTL AGE ALTITUDE ANT_AZ ANT_EL ANT_PATH ARRL_SECT AWARD_GRANTED AWARD_SUBMITTED A_INDEX
BAND BAND_RX CALL CHECK CLASS CLUBLOG_QSO_UPLOAD_DATE CLUBLOG_QSO_UPLOAD_STATUS CNTY CNTY_ALT COMMENT
COMMENT_INTL CONT CONTACTED_OP CONTEST_ID COUNTRY COUNTRY_INTL CQZ CREDIT_GRANTED CREDIT_SUBMITTED DARC_DOK
DCL_QSLRDATE DCL_QSLSDATE DCL_QSL_RCVD DCL_QSL_SENT DISTANCE DXCC EMAIL EQ_CALL EQSL_AG EQSL_QSLRDATE
EQSL_QSLSDATE EQSL_QSL_RCVD EQSL_QSL_SENT FISTS FISTS_CC FORCE_INIT FREQ FREQ_RX GRIDSQUARE GRIDSQUARE_EXT
GUEST_OP HAMLOGEU_QSO_UPLOAD_DATE HAMLOGEU_QSO_UPLOAD_STATUS HAMQTH_QSO_UPLOAD_DATE HAMQTH_QSO_UPLOAD_STATUS
HRDLOG_QSO_UPLOAD_DATE HRDLOG_QSO_UPLOAD_STATUS IOTA IOTA_ISLAND_ID ITUZ K_INDEX LAT LON LOTW_QSLRDATE
LOTW_QSLSDATE LOTW_QSL_RCVD LOTW_QSL_SENT MAX_BURSTS MODE MORSE_KEY_INFO MORSE_KEY_TYPE MS_SHOWER
MY_ALTITUDE MY_ANTENNA MY_ANTENNA_INTL MY_ARRL_SECT MY_CITY MY_CITY_INTL MY_CNTY MY_CNTY_ALT MY_COUNTRY
MY_COUNTRY_INTL MY_CQ_ZONE MY_DARC_DOK MY_DXCC MY_FISTS MY_GRIDSQUARE MY_GRIDSQUARE_EXT MY_IOTA
MY_IOTA_ISLAND_ID MY_ITU_ZONE MY_LAT MY_LON MY_MORSE_KEY_INFO MY_MORSE_KEY_TYPE MY_NAME MY_NAME_INTL
MY_POSTAL_CODE MY_POSTAL_CODE_INTL MY_POTA_REF MY_RIG MY_RIG_INTL MY_SIG MY_SIG_INTL MY_SIG_INFO
MY_SIG_INFO_INTL MY_SOTA_REF MY_STATE MY_STREET MY_STREET_INTL MY_USACA_COUNTIES MY_VUCC_GRIDS MY_WWFF_REF
NAME NAME_INTL NOTES NOTES_INTL NR_BURSTS NR_PINGS OPERATOR OWNER_CALLSIGN PFX POTA_REF PRECEDENCE PROP_MODE
PUBLIC_KEY QRZCOM_QSO_DOWNLOAD_DATE QRZCOM_QSO_DOWNLOAD_STATUS QRZCOM_QSO_UPLOAD_DATE
QRZCOM_QSO_UPLOAD_STATUS QSLMSG QSLMSG_INTL QSLMSG_RCVD QSLRDATE QSLSDATE QSL_RCVD QSL_RCVD_VIA QSL_SENT
QSL_SENT_VIA QSL_VIA QSO_COMPLETE QSO_DATE QSO_DATE_OFF QSO_RANDOM QTH QTH_INTL REGION RIG RIG_INTL RST_RCVD
RST_SENT RX_PWR SAT_MODE SAT_NAME SFI SIG SIG_INTL SIG_INFO SIG_INFO_INTL SILENT_KEY SKCC SOTA_REF SRX
SRX_STRING STATE STATION_CALLSIGN STX STX_STRING SUBMODE SWL TEN_TEN TIME_OFF TIME_ON TX_PWR UKSMG
USACA_COUNTIES VE_PROV VUCC_GRIDS WEB WWFF_REF
""".split())  # noqa: SIM905 - the list as the specification prints it
_APP_OR_USERDEF = re.compile(r"APP_[A-Z0-9]+_[A-Z0-9_]+|USERDEF[0-9]+")


def is_adif_field(name: str) -> bool:
    """An ADIF QSO field, an application field (APP_PROGRAM_NAME) or a USERDEFn field (upper case)."""
    return name in ADIF_QSO_FIELDS or _APP_OR_USERDEF.fullmatch(name) is not None


# Limits on one QSO, the same for the JSON API and imports: the ADI parser's per-field cap, and far
# more fields than the whole ADIF field list (about 200) plus a logger's application fields.
MAX_FIELD_CHARS = 64 * 1024
MAX_FIELDS = 1000

# Maidenhead locator: 2, 4, 6 or 8 characters (field A-R, square 0-9, subsquare A-X, extended 0-9).
_GRID = re.compile(r"[A-R]{2}(?:[0-9]{2}(?:[A-X]{2}(?:[0-9]{2})?)?)?")


def valid_grid(text: str) -> bool:
    return text.isascii() and _GRID.fullmatch(text.upper()) is not None  # "ﬀ".upper() is "FF"


def spot_khz(value: float) -> float | None:
    """A spot frequency as the cluster port reads it (DXSpider's rule): kHz, except that a number below
    1800 that lands in a band when read as MHz is MHz (`14.195` is 14,195 kHz). None when the result is
    not in an amateur band."""
    khz = valid_khz(value)
    if khz is None:
        return None
    if khz < 1800 and band_for_mhz(khz) is not None:
        khz *= 1000.0
    khz = round(khz, 1)
    return khz if band_for_mhz(khz / 1000.0) is not None else None
