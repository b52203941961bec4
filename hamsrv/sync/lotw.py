"""LoTW's report download (FACTS 3.2), without I/O: the query to send and what the answer means.

LoTW answers a good login with an ADIF report ("ARRL Logbook of the World Status Report", a header
with APP_LoTW_LASTQSL, records, and a closing <APP_LoTW_EOF>), and a bad login with an HTML page. A
report without the closing marker was cut off on the way and is not used at all: the resume point
stays, so the next sync asks again for the same confirmations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hamsrv.ingest.adif import AdiParser, Header, LotwEof, Record
from hamsrv.sync.confirmations import QslError

REPORT_PATH = "/lotwuser/lotwreport.adi"
FIRST_SINCE = "1900-01-01"  # the first sync asks for every confirmation there is
_LASTQSL = re.compile(r"\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2})?")
_REPORT_START = b"ARRL Logbook of the World Status Report"
_EOH = re.compile(rb"<eoh>", re.IGNORECASE)
_HTML = re.compile(rb"<\s*(!doctype\s+html|html|head|body|title|form)\b", re.IGNORECASE)


def report_query(username: str, password: str, since: str | None) -> dict[str, str]:
    """Confirmations received on or after `since` (the previous report's APP_LoTW_LASTQSL)."""
    return {"login": username, "password": password, "qso_query": "1", "qso_qsl": "yes",
            "qso_qslsince": since or FIRST_SINCE}


@dataclass
class LotwReport:
    last_qsl: str | None  # APP_LoTW_LASTQSL: where the next sync resumes
    records: list[Record] = field(default_factory=list)  # confirmed QSOs (QSL_RCVD=Y)


def _visible_text(body: bytes, limit: int = 120) -> str:
    text = re.sub(rb"<[^>]*>", b" ", body[:4096]).decode("utf-8", "replace")
    return " ".join(text.split())[:limit]


def read_report(body: bytes) -> LotwReport:
    """The confirmations of a LoTW answer, or QslError saying in words what went wrong."""
    if not _EOH.search(body):
        if body.lstrip().startswith(_REPORT_START):
            raise QslError("truncated", "LoTW's report was cut off before its header ended; nothing of it "
                                        "was used, the next sync asks again")
        if _HTML.search(body[:8192]):
            if b"maintenance" in body[:8192].lower():
                raise QslError("down", "LoTW is down for maintenance")
            raise QslError("login", "LoTW refused the password (it sent its login page instead of a report)")
        if not body.strip():
            raise QslError("unexpected", "LoTW sent an empty answer instead of a report")
        raise QslError("unexpected", f"LoTW sent something that is not a report: {_visible_text(body)!r}")
    parser = AdiParser()
    parser.feed(body)
    parser.close()
    header: Header | None = None
    records: list[Record] = []
    closed = False
    for event in parser.events():
        if isinstance(event, Header):
            header = event
        elif isinstance(event, Record):
            if closed:
                raise QslError("unexpected", "LoTW's report goes on after its end marker")
            if event.fields.get("QSL_RCVD", "").strip().upper() == "Y":
                records.append(event)
        elif isinstance(event, LotwEof):
            closed = True
    if not closed:
        raise QslError("truncated", "LoTW's report was cut off (no APP_LoTW_EOF at its end); nothing of it "
                                    "was used, the next sync asks again")
    fields = header.fields if header is not None else {}
    last = fields.get("APP_LOTW_LASTQSL", "").strip()
    return LotwReport(last if _LASTQSL.fullmatch(last) else None, records)
