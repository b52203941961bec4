"""What LoTW and eQSL send, for the format tests and the fake servers.

The LoTW reports are the real ones in shared/testdata/adif. LoTW's login-refused page and eQSL's pages
are written here from their documented shape (FACTS 3.2 and 4: LoTW answers a bad login with an HTML
page instead of ADIF; eQSL's DownloadInBox page says "Your ADIF log file has been built" and links
`../downloadedfiles/NAME.adi`, or says "Error: No such Username/Password found" or "You have no log
entries"). No real eQSL inbox file is in testdata, so the inbox file is built from the real QSOs of a
LoTW report, turned into the senders' view with the fields DownloadInBox.txt lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from hamsrv.ingest.adif import Record, parse_bytes
from tests.testdata import TESTDATA

LOTW_K9CTS = TESTDATA / "adif" / "lotwreport_k9cts.adi"  # QSL ONLY: YES, 438 confirmations
LOTW_2E0SQL = TESTDATA / "adif" / "cloudlog_lotwreport6.adi"  # 1,993 confirmations, lower-case tags

LOTW_LOGIN_PAGE = b"""<!DOCTYPE html>
<html><head><title>Logbook of the World</title></head>
<body><h1>Logbook of the World</h1>
<form method="post" action="/lotwuser/default"><p>Username/password incorrect</p>
<input type="text" name="login"><input type="password" name="password"><input type="submit" value="Log On">
</form></body></html>
"""

EQSL_BAD_LOGIN_PAGE = b"""<HTML><HEAD><TITLE>eQSL.cc DownloadInBox</TITLE></HEAD><BODY>
<H3>Error: No such Username/Password found</H3></BODY></HTML>
"""
EQSL_EMPTY_PAGE = b"""<HTML><HEAD><TITLE>eQSL.cc DownloadInBox</TITLE></HEAD><BODY>
<P>You have no log entries</P></BODY></HTML>
"""
EQSL_ERROR_PAGE = b"""<HTML><BODY><P>Error: RcvdSince must be YYYYMMDDHHMM</P></BODY></HTML>
"""


def eqsl_built_page(name: str) -> bytes:
    return (b"<HTML><HEAD><TITLE>eQSL.cc DownloadInBox</TITLE></HEAD><BODY>\r\n"
            b"<P>Your ADIF log file has been built</P>\r\n"
            b'<UL><LI><A HREF="../downloadedfiles/' + name.encode() + b'.adi">.ADI file</A></UL>\r\n'
            b"</BODY></HTML>\r\n")


def _adi(fields: Mapping[str, str]) -> bytes:
    return b"".join(f"<{k}:{len(v.encode())}>{v}\r\n".encode() for k, v in fields.items())


def eqsl_inbox_file(records: Iterable[Mapping[str, str]]) -> bytes:
    body = [b"eQSL.cc DownloadInBox\r\n", _adi({"ADIF_VER": "1.00", "PROGRAMID": "eQSL.cc DownloadInBox"}),
            b"<EOH>\r\n"]
    for fields in records:
        body.append(_adi(fields) + b"<EOR>\r\n")
    return b"".join(body)


def senders_view(lotw: Record) -> dict[str, str]:
    """A LoTW confirmation as the other station's eQSL to us (DownloadInBox.txt's field list)."""
    f = lotw.fields
    view = {"CALL": f["CALL"], "QSO_DATE": f["QSO_DATE"], "TIME_ON": f["TIME_ON"][:4], "BAND": f["BAND"],
            "MODE": f["MODE"], "RST_SENT": "599", "QSL_SENT": "Y", "QSL_SENT_VIA": "E"}
    if "GRIDSQUARE" in f:
        view["GRIDSQUARE"] = f["GRIDSQUARE"]
    return view


def lotw_records(path: Path = LOTW_K9CTS) -> list[Record]:
    return [e for e in parse_bytes(path.read_bytes()) if isinstance(e, Record)]
