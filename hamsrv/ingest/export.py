"""Streaming export of a logbook as ADI or ADX: pages of rows -> ADIF fields -> the writer.

Pages are read by keyset (db.qsos.oldest_first), so no transaction or cursor stays open while a slow client
reads, and memory holds one page whatever the logbook size.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from hamsrv.db import qsos
from hamsrv.db.database import Database
from hamsrv.ingest.adif import Header, write_adi, write_adx
from hamsrv.ingest.normalize import QSO_COLUMNS, Qso, to_fields

log = logging.getLogger(__name__)

FORMATS = ("adi", "adx")
PAGE_ROWS = 5000
_EPOCH = datetime(1900, 1, 1, tzinfo=UTC)


def export_header(owner_call: str) -> Header:
    now = datetime.now(UTC)
    return Header({"ADIF_VER": "3.1.6", "PROGRAMID": "hamsrv",
                   "CREATED_TIMESTAMP": now.strftime("%Y%m%d %H%M%S")},
                  preamble=f"hamsrv logbook export for {owner_call}")


def _writable(fields: dict[str, str], fmt: str) -> dict[str, str]:
    """Fields of one record the writer accepts: a field it cannot write faithfully (a name with
    ':' or '<' from a broken input file) is left out and logged, not the whole record."""
    writer = write_adi if fmt == "adi" else write_adx
    kept = {}
    for name, value in fields.items():
        try:
            list(writer(None, [{name: value}]))
        except ValueError as exc:
            log.warning("export: field left out: %s", exc)
            continue
        kept[name] = value
    return kept


def _encode(fields: dict[str, str], fmt: str) -> bytes:
    if fmt == "adi":
        try:
            return b"".join(write_adi(None, [fields]))
        except ValueError:
            return b"".join(write_adi(None, [_writable(fields, fmt)]))
    try:
        return b"".join(write_adx(None, [fields]))[_ADX_OPEN:-_ADX_CLOSE]
    except ValueError:
        return b"".join(write_adx(None, [_writable(fields, fmt)]))[_ADX_OPEN:-_ADX_CLOSE]


# write_adx wraps records in the document; per-record chunks strip that wrapper.
_ADX_OPEN = len(b"".join(write_adx(None, []))) - len(b"</RECORDS>\n</ADX>\n")
_ADX_CLOSE = len(b"</RECORDS>\n</ADX>\n")


async def export_qsos(db: Database, owner_id: int, owner_call: str, *, fmt: str = "adi",
                      since: datetime | None = None) -> AsyncIterator[bytes]:
    """The owner's QSOs (from `since` on), oldest first, as chunks of an ADI or ADX file."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    header = export_header(owner_call)
    if fmt == "adi":
        yield next(write_adi(header, []))
    else:
        yield b"".join(write_adx(header, []))[:-_ADX_CLOSE]
    cursor: tuple[datetime, int] = (since or _EPOCH, 0)  # ids are positive: this includes `since` itself
    while True:
        rows = await qsos.oldest_first(db, owner_id, cursor, PAGE_ROWS)
        if not rows:
            break
        yield b"".join(_encode(to_fields(Qso(*(row[c] for c in QSO_COLUMNS))), fmt) for row in rows)
        cursor = (rows[-1]["start_at"], rows[-1]["id"])
        if len(rows) < PAGE_ROWS:
            break
    if fmt == "adx":
        yield b"</RECORDS>\n</ADX>\n"
