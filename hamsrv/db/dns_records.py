"""The SQL of members' DNS records (`dns_records`): each owner sees and changes only its own rows."""

from __future__ import annotations

from hamsrv.db.database import Database, Row


async def owned(db: Database, owner_id: int) -> list[Row]:
    return await db.fetch("SELECT * FROM dns_records WHERE owner_id = %s ORDER BY name, type, id", [owner_id])


async def get_owned(db: Database, owner_id: int, record_id: int) -> Row | None:
    return await db.fetchrow("SELECT * FROM dns_records WHERE id = %s AND owner_id = %s", [record_id, owner_id])


async def named(db: Database, zone_id: int, name: str, *, besides: int | None = None) -> list[Row]:
    """Every record of the zone with this name (whoever owns it), except the record `besides`."""
    if besides is None:
        return await db.fetch("SELECT * FROM dns_records WHERE zone_id = %s AND name = %s", [zone_id, name])
    return await db.fetch("SELECT * FROM dns_records WHERE zone_id = %s AND name = %s AND id <> %s",
                          [zone_id, name, besides])


async def insert(db: Database, zone_id: int, owner_id: int, name: str, rtype: str, content: str,
                 ttl: int) -> Row | None:
    return await db.fetchrow(
        "INSERT INTO dns_records (zone_id, owner_id, name, type, content, ttl) VALUES (%s, %s, %s, %s, %s, %s)"
        " RETURNING *", [zone_id, owner_id, name, rtype, content, ttl])


async def update(db: Database, record_id: int, name: str, rtype: str, content: str, ttl: int, *,
                 touch: bool = True) -> Row | None:
    """`touch`: set updated_at (an undo puts the old values back without it)."""
    stamp = ", updated_at = now()" if touch else ""
    return await db.fetchrow(f"UPDATE dns_records SET name = %s, type = %s, content = %s, ttl = %s{stamp}"
                             " WHERE id = %s RETURNING *", [name, rtype, content, ttl, record_id])


async def delete(db: Database, record_id: int) -> None:
    await db.execute("DELETE FROM dns_records WHERE id = %s", [record_id])


async def zone_id(db: Database, zone: str) -> int:
    """The id of the zone's row, created on first use."""
    row = await db.fetchrow("INSERT INTO dns_zones (name) VALUES (%s) ON CONFLICT (name) DO UPDATE"
                            " SET name = EXCLUDED.name RETURNING id", [zone])
    assert row is not None
    return int(row["id"])


async def published(db: Database, zone_id: int, name: str | None = None, rtype: str | None = None) -> list[Row]:
    """`name`, `type`, `content`, `ttl` of the zone's enabled records, of one rrset when name and type are given."""
    if name is None or rtype is None:
        return await db.fetch("SELECT name, type, content, ttl FROM dns_records WHERE zone_id = %s AND NOT disabled",
                              [zone_id])
    return await db.fetch("SELECT name, type, content, ttl FROM dns_records WHERE zone_id = %s AND name = %s"
                          " AND type = %s AND NOT disabled", [zone_id, name, rtype])
