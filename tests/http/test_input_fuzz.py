"""Every parser of client input, fed anything under hypothesis: a value or the documented input error,
never another exception (which would be a 500 or a dropped connection)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hamsrv.errors import InputError
from hamsrv.firehose.filters import parse_filter, parse_query, parse_subscribe
from hamsrv.firehose.session import ClusterSession
from hamsrv.firehose.spot_input import spot_from_json
from hamsrv.http.qso_input import row_from_json

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)
adif_names = st.sampled_from(["call", "qso_date", "time_on", "freq", "band", "mode", "submode", "gridsquare",
                              "rst_sent", "time_off", "qso_date_off", "dxcc", "app_x_y", "lotw_qsl_rcvd"])
bodies = st.dictionaries(adif_names | st.text(max_size=12), json_values, max_size=8)


def value_or_input_error(parse: Any, *args: Any) -> None:
    with contextlib.suppress(InputError):
        parse(*args)


@settings(max_examples=300, deadline=None)
@given(bodies)
def test_qso_json(body: dict[str, Any]) -> None:
    value_or_input_error(row_from_json, body)


def test_huge_integers_are_input_errors() -> None:
    """JSON allows integers of any length; str() of one over 4,300 digits raises ValueError."""
    huge = 10**5000
    for key in ("freq", "call", "dxcc", "app_x_y"):
        value_or_input_error(row_from_json, {"call": "W1AW", "qso_date": "20240101", "time_on": "1200", key: huge})
    for key in ("dx", "freq", "comment"):
        value_or_input_error(spot_from_json, {"dx": "IP0TRC", "freq": 14025, key: huge}, "W1AW")


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["dx", "freq", "comment", "spotter"]) | st.text(max_size=8), json_values,
                       max_size=5))
def test_spot_json(body: dict[str, Any]) -> None:
    value_or_input_error(spot_from_json, body, "W1AW")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.lists(st.sampled_from(["band=20m", "mode=CW", "since=1", "since=" + "9" * 5000,
                                                         "dxcc=" + "1" * 4400, "cont=EU", "&", "=", "%ff"]),
                                        max_size=6).map("&".join))
def test_firehose_query(query: str) -> None:
    value_or_input_error(parse_query, query)


@settings(max_examples=300, deadline=None)
@given(json_values.map(lambda v: {"subscribe": v}) | json_values)
def test_firehose_subscribe(message: Any) -> None:
    try:
        text = json.dumps(message)
    except ValueError:
        return
    value_or_input_error(parse_subscribe, text)
    if isinstance(message, dict) and isinstance(message.get("subscribe"), dict):
        value_or_input_error(parse_filter, message["subscribe"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=80) | st.sampled_from([b"G4XYZ\r\n", b"DX 14025 IP0TRC\r\n", b"sh/dx 5\r\n",
                                                          b"accept/spots on hf/cw\r\n", b"\xff\xfd\x18", b"\r\n"]),
                max_size=12))
def test_cluster_session(chunks: list[bytes]) -> None:
    session = ClusterSession("GB7HAM")
    session.start()
    for chunk in chunks:
        session.receive_data(chunk)
