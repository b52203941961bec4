"""NOAA SWPC solar data (hourly): 10.7 cm flux, planetary Kp, sunspot number.

Parsers are pure functions of bytes (FACTS 6): Kp comes as an array of arrays with a header row (until
2026) or as an array of objects (since); the daily flux list is not sorted by time; the monthly sunspot
list marks missing values with -1. Each parser returns the reading with the latest time tag.
The job stores the newest readings in `solar_latest`, which feeds GET /api/solar and /api/propagation.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from hamsrv.config import Config
from hamsrv.db import solar, sync_state
from hamsrv.db.database import Database
from hamsrv.propagation import SolarReading
from hamsrv.sync import fetch
from hamsrv.sync.scheduler import Job, Progress, SyncError

AUTHORITY = "NOAA"
KP_PATH = "/products/noaa-planetary-k-index.json"
FLUX_PATHS = ("/products/summary/10cm-flux.json", "/json/f107_cm_flux.json")  # summary first (FACTS 6)
SSN_PATH = "/json/solar-cycle/observed-solar-cycle-indices.json"
JSON_TYPES = ("application/json", "text/json", "text/plain")  # SWPC serves application/json
MAX_BYTES = 8 << 20  # the sunspot file, the largest, is ~0.5 MB
STALE_AFTER = timedelta(hours=4)  # hourly syncs: four missed ones make the data stale
INTERVAL = 3600.0


class FormatError(SyncError):
    """A SWPC file that is not in any shape we know (the message names the file and the problem)."""


@dataclass(frozen=True)
class Reading:
    value: float
    time: datetime


def parse_time(text: Any) -> datetime | None:
    """SWPC time tags: '2026-02-02 00:00:00.000', '2021-03-14T20:00:00', '2024-05'; UTC."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    try:
        when = datetime.fromisoformat(text + "-01" if len(text) == 7 else text)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _load(data: bytes, name: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        start = data.lstrip()[:1]
        raise FormatError(f"{name} is not JSON" + (" (an HTML page?)" if start == b"<" else "")) from None


def _latest(pairs: list[tuple[Any, Any]], name: str, lo: float, hi: float) -> Reading:
    readings = [Reading(v, t) for t_raw, v_raw in pairs
                if (t := parse_time(t_raw)) is not None and (v := _number(v_raw)) is not None and lo <= v <= hi]
    if not readings:
        raise FormatError(f"{name} holds no usable values")
    return max(readings, key=lambda r: r.time)


def parse_kp(data: bytes) -> Reading:
    """The latest 3-hourly planetary Kp from products/noaa-planetary-k-index.json, either shape."""
    name = "the Kp file"
    rows = _load(data, name)
    if not isinstance(rows, list) or not rows:
        raise FormatError(f"{name} is not a list of readings")
    if isinstance(rows[0], list):  # [["time_tag","Kp",...], [...], ...]
        header = [str(h) for h in rows[0]]
        if "time_tag" not in header or not ({"Kp", "kp"} & set(header)):
            raise FormatError(f"{name}: the header row {header[:4]} has no time_tag and Kp")
        t, k = header.index("time_tag"), header.index("Kp" if "Kp" in header else "kp")
        pairs = [(r[t], r[k]) for r in rows[1:] if isinstance(r, list) and len(r) > max(t, k)]
    elif isinstance(rows[0], dict):  # [{"time_tag": ..., "Kp": ...}, ...]
        pairs = [(r.get("time_tag"), r.get("Kp", r.get("kp"))) for r in rows if isinstance(r, dict)]
    else:
        raise FormatError(f"{name} holds neither rows nor objects")
    return _latest(pairs, name, 0, 9)


def parse_flux(data: bytes) -> Reading:
    """The latest 10.7 cm flux: json/f107_cm_flux.json (a list, not sorted by time) or the
    products/summary/10cm-flux.json object ({"Flux": "222", "TimeStamp": ...})."""
    name = "the 10.7 cm flux file"
    body = _load(data, name)
    if isinstance(body, dict):
        pairs = [(body.get("TimeStamp", body.get("time_tag")), body.get("Flux", body.get("flux")))]
    elif isinstance(body, list):
        pairs = [(r.get("time_tag"), r.get("flux")) for r in body if isinstance(r, dict)]
    else:
        raise FormatError(f"{name} is neither a list nor an object")
    return _latest(pairs, name, 30, 1000)


def parse_ssn(data: bytes) -> Reading:
    """The latest monthly sunspot number from observed-solar-cycle-indices.json (-1 means none)."""
    name = "the sunspot file"
    body = _load(data, name)
    if not isinstance(body, list):
        raise FormatError(f"{name} is not a list")
    pairs = [(r.get("time-tag", r.get("time_tag")), r.get("ssn")) for r in body if isinstance(r, dict)]
    return _latest(pairs, name, 0, 1000)


# ---- storage

async def latest_reading(db: Database) -> SolarReading | None:
    """For /api/propagation: the stored flux and Kp; `time` is when the sync last got them."""
    row = await solar.latest(db)
    if row is None or row["flux"] is None:
        return None
    return SolarReading(row["flux"], row["kp"], row["fetched_at"], "noaa")


async def solar_json(db: Database, now: datetime | None = None) -> dict[str, Any] | None:
    row = await solar.latest(db)
    if row is None:
        return None
    now = now or datetime.now(UTC)

    def item(value: Any, when: datetime | date | None) -> dict[str, Any] | None:
        return None if value is None else {"value": value, "time": when.isoformat() if when else None}

    return {
        "flux": item(row["flux"], row["flux_time"]),
        "kp": item(row["kp"], row["kp_time"]),
        "ssn": item(row["ssn"], row["ssn_month"]),
        "fetched_at": row["fetched_at"].isoformat(),
        "stale": now - row["fetched_at"] > STALE_AFTER,
        "source": "NOAA SWPC",
    }


async def store(db: Database, flux: Reading | None, kp: Reading | None, ssn: Reading | None) -> None:
    """Keep what arrived; a value that did not arrive this time keeps its older reading."""
    await solar.store(db, (flux.value, flux.time) if flux else None, (kp.value, kp.time) if kp else None,
                      (ssn.value, ssn.time.date()) if ssn else None)


# ---- the job

async def sync(base_url: str, db: Database, progress: Progress) -> str:
    """Fetch Kp, flux and sunspot number; any one missing is an error, but what did arrive is kept."""
    base = base_url.rstrip("/")
    details = await sync_state.details(db, "noaa")
    validators: dict[str, fetch.Validators] = details.get("validators", {})
    have_data = await solar.latest(db) is not None
    results: dict[str, Reading | None] = {}
    errors: list[str] = []
    confirmed = 0  # files that arrived or were answered 304
    async with fetch.client() as http:
        async def get(path: str, parser: Any) -> Reading | None:
            async with fetch.get(http, base + path, authority=AUTHORITY, kinds=JSON_TYPES, what="JSON",
                                 validators=validators.get(path) if have_data else None) as answer:
                if answer.not_modified:
                    progress(f"{path}: not modified")
                    return None
                data = await fetch.read_all(answer, AUTHORITY, MAX_BYTES)
                reading: Reading = parser(data)
                validators[path] = answer.validators
                progress(f"{path}: {reading.value:g} at {reading.time:%Y-%m-%d %H:%M}")
                return reading

        for key, paths, parser in (("kp", (KP_PATH,), parse_kp), ("flux", FLUX_PATHS, parse_flux),
                                   ("ssn", (SSN_PATH,), parse_ssn)):
            got: list[Reading] = []
            failed: list[str] = []
            unchanged = False
            for path in paths:
                try:
                    reading = await get(path, parser)
                except SyncError as exc:
                    failed.append(str(exc))
                    continue
                unchanged = unchanged or reading is None
                if reading is not None:
                    got.append(reading)
            results[key] = max(got, key=lambda r: r.time) if got else None
            confirmed += bool(got) or unchanged
            if not got and not unchanged:
                errors.extend(failed)
    if confirmed:  # fetched_at moves only when NOAA really answered, so staleness shows an outage
        await store(db, results["flux"], results["kp"], results["ssn"])
    await sync_state.save_details(db, "noaa", {**details, "validators": validators})
    if errors:
        raise SyncError("; ".join(errors))
    parts = [f"{k} {r.value:g}" for k, r in results.items() if r is not None]
    return ", ".join(parts) if parts else "unchanged (304)"


def make_job_for(base_url: str, db: Database) -> Job:
    return Job("noaa", partial(sync, base_url, db), interval=INTERVAL, timeout=300, retry_min=120,
               retry_max=1800)


def make_job(config: Config, db: Database) -> Job:
    return make_job_for(config.noaa_url, db)
