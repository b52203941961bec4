""""Have I worked this station?" is answered from the (owner_id, call, start_minute) index (migration
0006), whether or not the table has statistics yet, and in the search's newest-first order."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bench.ingest import HEADER, synthetic_records
from hamsrv.db import qsos
from hamsrv.db.database import Database
from hamsrv.ingest.jobs import import_stream


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _index_names(plan: Any) -> set[str]:
    if isinstance(plan, dict):
        found = {plan["Index Name"]} if "Index Name" in plan else set()
        return found.union(*(_index_names(v) for v in plan.values()))
    if isinstance(plan, list):
        return set().union(*(_index_names(v) for v in plan))
    return set()


@pytest.mark.parametrize("analyzed", [False, True])
async def test_a_call_lookup_uses_the_call_index(db: Database, monkeypatch: pytest.MonkeyPatch, analyzed: bool):
    owner = (await db.fetch("INSERT INTO users (callsign) VALUES ('W1AW') RETURNING id"))[0]["id"]
    records = list(synthetic_records(3000))
    records += [b"<CALL:5>K1TTT " + r.split(b" ", 1)[1] for r in synthetic_records(5, seed=9)]
    result = await import_stream(db, owner, _one(HEADER + b"".join(records)))
    assert result.inserted == 3005
    if analyzed:
        await db.execute("ANALYZE qsos")
    seen: list[tuple[str, Any]] = []
    fetch = db.fetch

    async def capture(sql: str, params: Any = ()) -> Any:
        seen.append((sql, params))
        return await fetch(sql, params)

    monkeypatch.setattr(db, "fetch", capture)
    rows = await qsos.search(db, owner, qsos.Search(call="K1TTT"))
    monkeypatch.undo()
    assert len(rows) == 5 and all(r["call"] == "K1TTT" for r in rows)
    assert [r["start_at"] for r in rows] == sorted((r["start_at"] for r in rows), reverse=True)
    [(sql, params)] = seen
    plan = (await db.fetch(f"EXPLAIN (FORMAT JSON) {sql}", params))[0]
    plan = json.loads(plan["QUERY PLAN"]) if isinstance(plan["QUERY PLAN"], str) else plan["QUERY PLAN"]
    assert _index_names(plan) == {"qsos_owner_call"}
