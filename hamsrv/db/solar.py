"""The SQL of `solar_latest`: the one row holding NOAA's newest flux, Kp and sunspot number."""

from __future__ import annotations

from datetime import date, datetime

from hamsrv.db.database import Database, Row


async def latest(db: Database) -> Row | None:
    return await db.fetchrow("SELECT * FROM solar_latest")


async def store(db: Database, flux: tuple[float, datetime] | None, kp: tuple[float, datetime] | None,
                ssn: tuple[float, date] | None) -> None:
    """(value, time) of each reading; one that is None keeps its older reading."""
    await db.execute(
        "INSERT INTO solar_latest (id, flux, flux_time, kp, kp_time, ssn, ssn_month, fetched_at)"
        " VALUES (1, %s, %s, %s, %s, %s, %s, now()) ON CONFLICT (id) DO UPDATE SET"
        " flux = coalesce(EXCLUDED.flux, solar_latest.flux),"
        " flux_time = coalesce(EXCLUDED.flux_time, solar_latest.flux_time),"
        " kp = coalesce(EXCLUDED.kp, solar_latest.kp), kp_time = coalesce(EXCLUDED.kp_time, solar_latest.kp_time),"
        " ssn = coalesce(EXCLUDED.ssn, solar_latest.ssn),"
        " ssn_month = coalesce(EXCLUDED.ssn_month, solar_latest.ssn_month), fetched_at = now()",
        [*(flux or (None, None)), *(kp or (None, None)), *(ssn or (None, None))])
