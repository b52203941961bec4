"""eQSL's inbox download (FACTS 4), without I/O: two steps, each answer read here.

Step 1, `DownloadInBox.cfm`, answers with an HTML page: on success it says the ADIF file has been built
and links it (`<A HREF="../downloadedfiles/xxx.adi">`); a bad login says "No such Username/Password
found"; an empty inbox says "You have no log entries". Step 2 fetches the linked .adi file, whose
records are the senders' own view of the QSOs (their CALL, QSO_DATE, TIME_ON, BAND, MODE ...).
"""

from __future__ import annotations

import re
from datetime import datetime

from hamsrv.ingest.adif import AdiParser, Record
from hamsrv.sync.confirmations import QslError

INBOX_PATH = "/qslcard/DownloadInBox.cfm"
_LINK = re.compile(rb"""<a\s[^>]*?href\s*=\s*["']?([^"'\s>]+\.adi)["'\s>]""", re.IGNORECASE)
_BAD_LOGIN = re.compile(rb"no\s+such\s+username\s*/\s*password", re.IGNORECASE)
_EMPTY = re.compile(rb"you\s+have\s+no\s+log\s+entries", re.IGNORECASE)
_ERROR = re.compile(rb"error\s*:\s*([^<\r\n]{1,200})", re.IGNORECASE)
_EOH = re.compile(rb"<eoh>", re.IGNORECASE)


def since_text(when: datetime) -> str:
    """RcvdSince's format: YYYYMMDDHHMM (UTC)."""
    return when.strftime("%Y%m%d%H%M")


def inbox_query(username: str, password: str, since: str | None) -> dict[str, str]:
    """Inbox items entered into eQSL on or after `since` (the start of the last good sync)."""
    query = {"UserName": username, "Password": password}
    if since:
        query["RcvdSince"] = since
    return query


def read_inbox_page(body: bytes) -> str | None:
    """The relative link of the built .adi file; None when the inbox has nothing; else QslError."""
    if _BAD_LOGIN.search(body):
        raise QslError("login", "eQSL refused the username or password")
    if _EMPTY.search(body):
        return None
    link = _LINK.search(body)
    if link is not None:
        return link.group(1).decode("ascii", "replace")
    said = _ERROR.search(body)
    if said is not None:
        text = " ".join(said.group(1).decode("utf-8", "replace").split())
        raise QslError("unexpected", f"eQSL said: Error: {text}")
    raise QslError("unexpected", "eQSL answered with a page that names no ADIF file to fetch")


def read_inbox_file(body: bytes) -> list[Record]:
    """The records of the fetched .adi file; QslError when it is not an eQSL ADIF file or was cut off."""
    eoh = _EOH.search(body)
    if eoh is None:
        raise QslError("unexpected", "eQSL's download was not an ADIF file (no <EOH>)")
    last_eor = body.upper().rfind(b"<EOR>")
    tail = body[last_eor + 5:] if last_eor >= 0 else body[eoh.end():]
    if tail.strip() and tail.strip().upper() != b"<EOF>":
        raise QslError("truncated", "eQSL's ADIF file was cut off (its last record is not closed); nothing of "
                                    "it was used, the next sync asks again")
    parser = AdiParser()
    parser.feed(body)
    parser.close()
    return [event for event in parser.events()  # SWL reports confirm no QSO
            if isinstance(event, Record) and event.fields.get("APP_EQSL_SWL", "").strip().upper() != "Y"]
