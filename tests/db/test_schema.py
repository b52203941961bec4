"""Schema behaviour that the code relies on, against a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import trio

from hamsrv.db import qsos
from hamsrv.db.database import Database
from hamsrv.db.trio_pg import TrioConnection
from hamsrv.identity.tokens import add_user


def row(call: str, start: datetime, band: str = "20m", mode: str = "CW") -> dict[str, object]:
    return {"call": call, "start_at": start, "band": band, "mode": mode, "freq": 14.025, "extra": {}}


async def test_deleting_a_user_deletes_their_qsos_only(db: Database) -> None:
    w1aw, k1abc = await add_user(db, "W1AW"), await add_user(db, "K1ABC")
    start = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert await qsos.insert(db, w1aw["id"], row("DL1ABC", start))
    assert await qsos.insert(db, k1abc["id"], row("DL1ABC", start))
    await db.execute("DELETE FROM users WHERE id = %s", [w1aw["id"]])
    counts = await db.fetch("SELECT owner_id, count(*) AS n FROM qsos GROUP BY owner_id")
    assert counts == [{"owner_id": k1abc["id"], "n": 1}]


async def test_no_qso_for_a_missing_owner(db: Database) -> None:
    assert await qsos.insert(db, 424242, row("DL1ABC", datetime(2024, 5, 1, tzinfo=UTC))) is None
    assert await db.fetch("SELECT * FROM qsos") == []


async def test_dedupe_key_is_owner_minute_call_band_mode(db: Database) -> None:
    owner = (await add_user(db, "W1AW"))["id"]
    start = datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)
    assert await qsos.insert(db, owner, row("DL1ABC", start))
    assert await qsos.insert(db, owner, row("DL1ABC", start + timedelta(seconds=50))) is None  # same minute
    assert await qsos.insert(db, owner, row("DL1ABC", start, band="40m"))
    assert await qsos.insert(db, owner, row("DL1ABC", start, mode="SSB"))
    assert await qsos.insert(db, owner, row("DL1ABC", start + timedelta(minutes=1)))
    no_band = {**row("DL1ABC", start), "band": None}
    assert await qsos.insert(db, owner, no_band)
    assert await qsos.insert(db, owner, no_band) is None  # NULL band still dedupes


async def test_insert_statement_notifies_recent_qsos_once_each(db: Database, db_url: str) -> None:
    owner = (await add_user(db, "W1AW"))["id"]
    private = (await add_user(db, "K1ABC"))["id"]  # share_qsos is off by default: never on the firehose
    await db.execute("UPDATE users SET share_qsos = true WHERE id = %s", [owner])
    listener = await TrioConnection.connect(db_url, autocommit=True)
    await listener.execute("LISTEN ham_qso_firehose")
    now = datetime.now(UTC)
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO qsos (owner_id, call, start_at, band, mode) VALUES"
            " (%s, 'DL1ABC', %s, '20m', 'CW'), (%s, 'OLD1AB', '2020-01-01', '20m', 'CW'),"
            " (%s, 'EA8XYZ', %s, '15m', 'FT8'), (%s, 'PRIV1AB', %s, '20m', 'CW')",
            [owner, now, owner, owner, now, private, now])
        async with conn.transaction():
            await conn.execute("SET LOCAL hamsrv.quiet = on")
            await conn.execute("INSERT INTO qsos (owner_id, call, start_at) VALUES (%s, 'QUIET1', %s)", [owner, now])
    calls = []
    with trio.move_on_after(1):
        async for note in listener.notifies():
            calls.append(note.payload)
    await listener.close()
    assert len(calls) == 2
    assert '"call" : "DL1ABC"' in calls[0] and '"station_callsign" : "W1AW"' in calls[0]
    assert '"call" : "EA8XYZ"' in calls[1]
