"""Path MUF estimates: MINIMUF 3.5, hour by hour, from the 10.7 cm solar flux. Pure functions, no I/O.

Method: MINIMUF 3.5 (R. B. Rose, "MINIMUF: a simplified MUF-prediction program for microcomputers",
QST December 1982), as carried by David L. Mills' C program and DXSpider's `perl/Minimuf.pm` (which
DXSpider's `show/muf` uses). The F2 MUF at a point comes from an ionisation term driven by the sun's
zenith angle and the time since local sunrise, scaled by the sunspot number (itself derived from the flux
by MINIMUF's own fit) and by a distance factor that saturates at one 4,000 km hop. The path MUF is the
lowest value over sample points: the midpoint for paths up to 4,000 km, and points 2,000 km in from each
end for longer ones, which is ITU-R P.533's control-point rule (T + d0/2 and R - d0/2, d0 = 4,000 km).

What it is not: a monthly-median model with CCIR maps (ITU-R P.533, VOACAP), nor an absorption-limited
LUF. Geomagnetic storms are not modelled: above STORM_KP the answer is labelled, never altered.
The long path walks the other way round the great circle (DXSpider keeps the short-path MUF for it).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime

from hamsrv.model import BANDS

EARTH_RADIUS_KM = 6371.2
STORM_KP = 5.0  # NOAA G1 (minor storm) starts at Kp 5: answers above it are labelled storm-degraded
FOT_FACTOR = 0.85  # optimum working frequency = 85 % of the MUF (the usual "FOT" convention)
# Bands a MUF can say something about: the MF/HF/low-VHF amateur bands (FACTS 1.5 edges).
HF_BANDS = tuple((name, lo, hi) for name, lo, hi in BANDS if 1.8 <= lo <= 50.0)

# Degrees of longitude and latitude per step of each character pair: field, square, subsquare, extended.
_GRID_STEPS = ((20.0, 10.0), (2.0, 1.0), (2.0 / 24, 1.0 / 24), (2.0 / 240, 1.0 / 240))
_GRID = re.compile(r"[A-R]{2}(?:[0-9]{2}(?:[A-X]{2}(?:[0-9]{2})?)?)?")


class LocatorError(ValueError):
    """Not a Maidenhead locator (the message says why)."""


def locator_to_latlon(locator: str) -> tuple[float, float]:
    """Centre of a 2-, 4-, 6- or 8-character Maidenhead square as (lat, lon) in degrees, east positive."""
    loc = locator.strip().upper()
    if len(loc) not in (2, 4, 6, 8) or not _GRID.fullmatch(loc):
        raise LocatorError(f"{locator!r} is not a Maidenhead locator (e.g. FN31 or JO62qm)")
    lon, lat = -180.0, -90.0
    for i, (lon_size, lat_size) in enumerate(_GRID_STEPS[:len(loc) // 2]):
        a, b = loc[2 * i], loc[2 * i + 1]
        x, y = (int(a), int(b)) if a.isdigit() else (ord(a) - 65, ord(b) - 65)
        lon += x * lon_size
        lat += y * lat_size
    return lat + lat_size / 2, lon + lon_size / 2


def flux_to_ssn(flux: float) -> float:
    """MINIMUF's own fit from the 10.7 cm flux to the sunspot number (ARRL Handbook 1991, p. 22-6)."""
    if flux < 65:
        return 0.0
    if flux < 110:
        return 108.36 - 0.005896 * (flux - 200.6) ** 2
    if flux < 213:
        return 60 + 1.068 * (flux - 110)
    return 384.0 - 0.0011059 * (flux - 652.9) ** 2


def ssn_to_flux(ssn: float) -> float:
    """ITU-R P.371: 10.7 cm flux from the sunspot number, for when only a sunspot number is known."""
    return 63.7 + 0.728 * ssn + 0.00089 * ssn * ssn


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _clamp(x: float) -> float:
    return -1.0 if x < -1 else 1.0 if x > 1 else x


def path_angle(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle angle (radians) between two points given in degrees (east-positive longitude)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    c = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(math.radians(lon2 - lon1))
    return math.acos(_clamp(c))


def minimuf(flux: float, month: int, day: int, hour: float, lat1: float, lon1: float,
            lat2: float, lon2: float, *, long_path: bool = False) -> float:
    """MINIMUF 3.5 path MUF (MHz) for one UTC hour. Ends in degrees, longitude east positive.

    MINIMUF walks the path from one end, and its sample points sit 0.0001 of the path off symmetric,
    which matters where its formulae jump (latitude 45 degrees, polar night): hamsrv takes the lower of
    the walks from either end, so the answer does not depend on which end is which.
    """
    ssn = flux_to_ssn(flux)
    # MINIMUF works in radians with west-positive longitude.
    la1, lo1, la2, lo2 = math.radians(lat1), -math.radians(lon1), math.radians(lat2), -math.radians(lon2)
    return min(_walk(ssn, month, day, hour, la1, lo1, la2, lo2, long_path),
               _walk(ssn, month, day, hour, la2, lo2, la1, lo1, long_path))


def _walk(ssn: float, month: int, day: int, hour: float, la1: float, lo1: float, la2: float, lo2: float,
          long_path: bool) -> float:
    """MINIMUF's walk from end 2 towards end 1 (away from it, for the long path): the lowest point MUF."""
    short = math.acos(_clamp(math.sin(la1) * math.sin(la2)
                             + math.cos(la1) * math.cos(la2) * math.cos(lo2 - lo1)))
    dist = 2 * math.pi - short if long_path else short
    k6 = max(1.59 * dist, 1.0)
    y1 = 0.0172 * (10 + (month - 1) * 30.4 + day)  # day of year as an angle
    y2 = 0.409 * math.cos(y1)  # solar declination
    s = math.sin(min(2.5 * dist / k6, math.pi / 2))
    m9 = 1 + 2.5 * s * math.sqrt(s)  # distance factor, saturating at one 4,000 km hop
    p, q = math.sin(la2), math.cos(la2)
    heading = -1.0 if long_path else 1.0  # the long path leaves end 2 the opposite way
    across = q * math.sin(short)
    a = (math.sin(la1) - p * math.cos(short)) / across if abs(across) > 1e-12 else 1.0  # cos(bearing)
    west = _sign(math.sin(lo1 - lo2)) * heading
    muf = 100.0
    k1 = 1 / (2 * k6)
    step = abs(0.9999 - 1 / k6)
    while k1 <= 1 - 1 / (2 * k6):
        g = dist * k1
        sin_lat = _clamp(p * math.cos(g) + q * math.sin(g) * a * heading)
        y3 = math.pi / 2 - math.acos(sin_lat)  # latitude of the sample point
        below = q * math.sqrt(1 - sin_lat * sin_lat)
        cos_dlon = _clamp((math.cos(g) - sin_lat * p) / below) if below > 1e-12 else 1.0
        lon_w = lo2 + west * _sign(math.sin(g)) * math.acos(cos_dlon)
        if lon_w < 0:  # into [0, 2 pi) in two steps: `%` can round a tiny negative up to 2 pi itself
            lon_w += 2 * math.pi
        if lon_w >= 2 * math.pi:
            lon_w -= 2 * math.pi
        muf = min(muf, _point_muf(ssn, m9, hour, y1, y2, y3, lon_w, la1, la2))
        k1 += step
    return muf


def _point_muf(ssn: float, m9: float, hour: float, y1: float, y2: float, y3: float, lon_w: float,
               la1: float, la2: float) -> float:
    """MINIMUF 3.5's F2 MUF at one sample point (the QST 1982 formulae, variable names as there)."""
    local = 3.82 * lon_w + 12 + 0.13 * (math.sin(y1) + 1.2 * math.sin(2 * y1))
    k8 = local - 12 * (1 + _sign(local - 24)) * _sign(abs(local - 24))  # hour of local noon, 0-24
    if math.cos(y3 + y2) <= -0.26:  # polar night: the sun never rises far enough
        k9 = 0.0
        g0 = 0.0
    else:
        f = (-0.26 + math.sin(y2) * math.sin(y3)) / (math.cos(y2) * math.cos(y3) + 0.001)
        k9 = 12 - math.atan(f / math.sqrt(abs(1 - f * f))) * 7.639437  # day length in hours
        t = k8 - k9 / 2 + 12 * (1 - _sign(k8 - k9 / 2)) * _sign(abs(k8 - k9 / 2))  # sunrise
        t4 = k8 + k9 / 2 - 12 * (1 + _sign(k8 + k9 / 2 - 24)) * _sign(abs(k8 + k9 / 2 - 24))  # sunset
        c0 = abs(math.cos(y3 + y2))
        t9 = max(9.7 * c0 ** 9.6, 0.1)
        g8 = math.pi * t9 / k9
        night_tail = c0 * (g8 * (math.exp(-k9 / t9) + 1)) / (1 + g8 * g8)
        if (t4 < t and (hour - t4) * (t - hour) > 0) or (t4 >= t and (hour - t) * (t4 - hour) <= 0):
            since_sunset = hour + 12 * (1 + _sign(t4 - hour)) * _sign(abs(t4 - hour))
            g0 = night_tail * math.exp((t4 - since_sunset) / 2)
        else:
            since_sunrise = hour + 12 * (1 + _sign(t - hour)) * _sign(abs(t - hour))
            angle = math.pi * (since_sunrise - t) / k9
            g0 = c0 * (math.sin(angle) + g8 * (math.exp((t - since_sunrise) / t9) - math.cos(angle))) / (1 + g8 * g8)
            g0 = max(g0, night_tail * math.exp((k9 - 24) / 2))
    muf = (1 + ssn / 250) * m9 * math.sqrt(6 + 58 * math.sqrt(g0))
    muf *= 1 - 0.1 * math.exp((k9 - 24) / 3)
    muf *= 1 + 0.1 * (1 - _sign(la1) * _sign(la2))
    muf *= 1 - 0.1 * (1 + _sign(abs(math.sin(y3)) - math.cos(y3)))
    return muf


@dataclass(frozen=True)
class SolarReading:
    """The solar inputs of an estimate: from the NOAA sync, or chosen by the caller."""

    flux: float  # 10.7 cm solar flux, sfu
    kp: float | None  # planetary K index (only labels storms)
    time: datetime | None  # when it was measured (None when the caller chose it)
    source: str  # "noaa" or "request"


@dataclass(frozen=True)
class HourForecast:
    hour: int  # UTC
    muf: float  # MHz
    fot: float  # MHz, 85 % of the MUF
    open_bands: tuple[str, ...]  # bands whose lower edge lies below the MUF, lowest first


def open_bands(muf: float) -> tuple[str, ...]:
    return tuple(name for name, lo, _hi in HF_BANDS if lo < muf)


def best_band(fot: float) -> str | None:
    """The highest band that starts below the optimum working frequency (None below 160 m)."""
    below = [name for name, lo, _hi in HF_BANDS if lo < fot]
    return below[-1] if below else None


def forecast(flux: float, day: date, lat1: float, lon1: float, lat2: float, lon2: float, *,
             long_path: bool = False) -> list[HourForecast]:
    """The path MUF for each UTC hour 0-23 of `day`."""
    out = []
    for hour in range(24):
        muf = round(minimuf(flux, day.month, day.day, hour, lat1, lon1, lat2, lon2, long_path=long_path), 2)
        out.append(HourForecast(hour, muf, round(FOT_FACTOR * muf, 2), open_bands(muf)))
    return out
