"""The SQL of the QSL sync: sealed logins (`qsl_accounts`), the confirmations LoTW and eQSL sent
(`qsl_confirmations`), their notices (`qsl_notifications`) and the QSOs they confirm.

Every statement is scoped to one user. Logins reach these functions sealed (identity/vault.py); the
statements that belong together take the connection of the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime

from hamsrv.db.database import Database, Row, execute_on, fetch_on
from hamsrv.db.trio_pg import TrioConnection

# ---- logins


async def put_login(conn: TrioConnection, user_id: int, service: str, sealed: bytes) -> None:
    await execute_on(
        conn, "INSERT INTO qsl_accounts (user_id, service, secret) VALUES (%s, %s, %s)"
        " ON CONFLICT (user_id, service) DO UPDATE SET secret = EXCLUDED.secret, updated_at = now()",
        [user_id, service, sealed])


async def delete_login(conn: TrioConnection, user_id: int, service: str) -> bool:
    return await execute_on(conn, "DELETE FROM qsl_accounts WHERE user_id = %s AND service = %s",
                            [user_id, service]) == 1


async def sealed_login(db: Database, user_id: int, service: str) -> bytes | None:
    row = await db.fetchrow("SELECT secret FROM qsl_accounts WHERE user_id = %s AND service = %s", [user_id, service])
    return None if row is None else bytes(row["secret"])


async def all_logins_for_update(conn: TrioConnection) -> list[Row]:
    """`user_id`, `service`, `secret` of every login, locked for the caller's transaction."""
    return await fetch_on(conn, "SELECT user_id, service, secret FROM qsl_accounts FOR UPDATE")


async def reseal(conn: TrioConnection, user_id: int, service: str, sealed: bytes) -> None:
    await execute_on(conn, "UPDATE qsl_accounts SET secret = %s WHERE user_id = %s AND service = %s",
                     [sealed, user_id, service])


async def linked_services(db: Database, user_id: int) -> set[str]:
    return {r["service"] for r in await db.fetch("SELECT service FROM qsl_accounts WHERE user_id = %s", [user_id])}


async def logins_with_users(db: Database) -> list[Row]:
    """`service`, `id` and `callsign` of every stored login's user."""
    return await db.fetch("SELECT a.service, u.id, u.callsign FROM qsl_accounts a"
                          " JOIN users u ON u.id = a.user_id ORDER BY u.id, a.service")


# ---- confirmations


async def insert_confirmations(conn: TrioConnection, user_id: int, service: str,
                               rows: Sequence[tuple[str, datetime, str | None, str | None, str | None,
                                                    date | None, Mapping[str, str]]]) -> int:
    """(call, start, band, mode, mode group, QSL date, fields) each; how many were new."""
    inserted = await fetch_on(
        conn, "INSERT INTO qsl_confirmations (user_id, service, call, start_at, band, mode, mode_group,"
        " qsl_date, fields) SELECT %s, %s, c, s, b, m, g, d, f::jsonb FROM unnest(%s::text[],"
        " %s::timestamptz[], %s::text[], %s::text[], %s::text[], %s::date[], %s::text[])"
        " AS x(c, s, b, m, g, d, f) ON CONFLICT DO NOTHING RETURNING id",
        [user_id, service, *([r[i] for r in rows] for i in range(6)), [json.dumps(dict(r[6])) for r in rows]])
    return len(inserted)


async def count_unmatched(conn: TrioConnection, user_id: int, service: str) -> int:
    left = await fetch_on(conn, "SELECT count(*) AS n FROM qsl_confirmations WHERE user_id = %s"
                                " AND service = %s AND qso_id IS NULL", [user_id, service])
    return int(left[0]["n"])


async def unmatched_after(conn: TrioConnection, user_id: int, service: str, after: int, limit: int) -> list[Row]:
    """The next `limit` unmatched confirmations by id, with the SUBMODE their fields carry."""
    return await fetch_on(
        conn, "SELECT id, call, start_at, band, mode, mode_group, qsl_date, fields->>'SUBMODE' AS submode"
        " FROM qsl_confirmations WHERE user_id = %s AND service = %s AND qso_id IS NULL AND id > %s"
        " ORDER BY id LIMIT %s", [user_id, service, after, limit])


async def candidate_qsos(conn: TrioConnection, user_id: int, service: str, calls: Sequence[str],
                         starts: Sequence[datetime]) -> list[Row]:
    """The user's QSOs within 30 minutes of a (call, start) pair that no `service` confirmation has yet."""
    return await fetch_on(
        conn, "SELECT q.id, q.call, q.start_at, q.band, q.freq, q.mode, q.submode FROM qsos q"
        " WHERE q.owner_id = %s AND q.call = ANY(%s) AND EXISTS (SELECT 1 FROM unnest(%s::text[],"
        " %s::timestamptz[]) AS c(call, at) WHERE c.call = q.call"
        " AND q.start_at BETWEEN c.at - interval '30 minutes' AND c.at + interval '30 minutes')"
        " AND NOT EXISTS (SELECT 1 FROM qsl_confirmations x WHERE x.qso_id = q.id AND x.service = %s)",
        [user_id, sorted(set(calls)), list(calls), list(starts), service])


async def record_matches(conn: TrioConnection, user_id: int, service: str, confirmation_ids: list[int],
                         qso_ids: list[int], days: list[date | None]) -> None:
    """Link each confirmation to its QSO and mark the QSO received through `service` on that day."""
    column = "lotw" if service == "lotw" else "eqsl"
    await execute_on(
        conn, "UPDATE qsl_confirmations c SET qso_id = p.qso, matched_at = now()"
        " FROM unnest(%s::bigint[], %s::bigint[]) AS p(conf, qso) WHERE c.id = p.conf",
        [confirmation_ids, qso_ids])
    await execute_on(
        conn, f"UPDATE qsos q SET {column}_qsl_rcvd = 'Y', {column}_qslrdate = p.day,"
        " updated_at = now() FROM unnest(%s::bigint[], %s::date[]) AS p(qso, day)"
        " WHERE q.id = p.qso AND q.owner_id = %s", [qso_ids, days, user_id])


async def totals(db: Database, user_id: int) -> dict[tuple[str, bool], int]:
    """(service, matched) -> number of the user's confirmations."""
    return {(r["service"], r["matched"]): r["n"] for r in await db.fetch(
        "SELECT service, qso_id IS NOT NULL AS matched, count(*) AS n FROM qsl_confirmations"
        " WHERE user_id = %s GROUP BY 1, 2", [user_id])}


async def unmatched(db: Database, user_id: int, service: str | None, limit: int) -> list[Row]:
    """The newest unmatched confirmations, of one service or (None) both."""
    return await db.fetch(
        "SELECT id, service, call, start_at, band, mode, mode_group, qsl_date, received_at"
        " FROM qsl_confirmations WHERE user_id = %s AND qso_id IS NULL AND (%s::text IS NULL OR service = %s)"
        " ORDER BY start_at DESC, id DESC LIMIT %s", [user_id, service, service, limit])


# ---- notices


async def add_notice(conn: TrioConnection, user_id: int, service: str, message: str, new: int,
                     matched: int) -> None:
    await execute_on(conn, "INSERT INTO qsl_notifications (user_id, service, message, new_count, matched)"
                           " VALUES (%s, %s, %s, %s, %s)", [user_id, service, message, new, matched])


async def unseen_notices(db: Database, user_id: int) -> list[Row]:
    return await db.fetch(
        "SELECT id, service, message, new_count, matched, created_at FROM qsl_notifications"
        " WHERE user_id = %s AND seen_at IS NULL ORDER BY created_at DESC, id DESC LIMIT 50", [user_id])


async def mark_seen(db: Database, user_id: int) -> int:
    return await db.execute("UPDATE qsl_notifications SET seen_at = now() WHERE user_id = %s"
                            " AND seen_at IS NULL", [user_id])
