"""The user bus's wire format on plain values: pages' messages, the size and rate rules, envelopes."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from hamsrv.bus import wire
from hamsrv.bus.wire import Close, Envelope, PostCommand, Refusal
from hamsrv.model import without_control


def parse(**message: object) -> PostCommand | Refusal:
    return wire.parse_command(json.dumps(message))


def test_announce_and_talk_as_the_cluster_port_takes_them() -> None:
    assert parse(type="announce", text=" QRV 6m ") == PostCommand("announce", "LOCAL", "QRV 6m")
    assert parse(type="announce", text="QRV", full=True, id="a") == PostCommand("announce", "ALL", "QRV", "a")
    assert parse(type="talk", to="g4abc-2", text="hi") == PostCommand("talk", "G4ABC-2", "hi")
    # the terminal's rule: backspace applied, other control characters dropped, tabs are blanks
    assert parse(type="announce", text="ab\x08c\x1b[1m\tx\x07") == PostCommand("announce", "LOCAL", "ac[1m x")


def test_refusals_say_what_is_wrong() -> None:
    assert wire.parse_command("[1]") == Refusal("a message must be a JSON object")
    assert wire.parse_command(b"\xff{") == Refusal("a message must be a JSON object")
    assert parse(type="announce", text="\x07\x07", id="x") == Refusal("Need at least some text", "x")
    assert parse(type="announce", text="x" * 201) == Refusal("text is too long: at most 200 characters")
    assert parse(type="announce", text="ok", full="yes") == Refusal("full must be true or false")
    assert parse(type="talk", to="not a call", text="hi") == Refusal("'not a call' is not a callsign")
    assert parse(type="talk", text="hi") == Refusal("'None' is not a callsign")
    assert parse(type="announce", text="hi", id="x" * 41).error.startswith("id must be")  # type: ignore[union-attr]
    assert parse(type="ping") == Refusal("type must be announce or talk")


def test_size_then_rate_before_anything_is_parsed() -> None:
    inbound = wire.Inbound()
    assert inbound.receive("x" * (wire.MAX_FRAME + 1), 0.0) == Close(1009, "message larger than 2048 bytes")
    answers = [inbound.receive("{}", 0.0) for _ in range(11)]
    assert answers[:10] == [Refusal("type must be announce or talk")] * 10
    assert answers[10] == Close(1008, "too many messages")
    assert isinstance(inbound.receive("{}", 1.0), Refusal)  # one more a second


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300),
                 st.dictionaries(st.sampled_from(["type", "text", "to", "full", "id"]),
                                 st.one_of(st.sampled_from(["announce", "talk", "W1AW"]), st.text(max_size=250),
                                           st.booleans(), st.integers(), st.none())).map(json.dumps)))
def test_any_message_is_a_command_within_the_rules_or_a_refusal(data: str | bytes) -> None:
    result = wire.parse_command(data)
    assert isinstance(result, (PostCommand, Refusal))
    if isinstance(result, PostCommand):
        assert 0 < len(result.text) <= 200 and without_control(result.text) == result.text
        assert result.text == result.text.strip()
        # what a page's worker accepted survives the trip to the board owner unchanged
        request = wire.PostRequest("node", "conn.1", "W1AW", result)
        assert wire.read_post_request(wire.post_request(request)) == request


@given(st.text(max_size=200))
def test_envelopes_never_raise_on_foreign_payloads(payload: str) -> None:
    assert wire.read_envelope(payload) is None or isinstance(wire.read_envelope(payload), Envelope)
    assert wire.read_post_request(payload) is None or isinstance(wire.read_post_request(payload), wire.PostRequest)


def test_envelopes_name_their_pages() -> None:
    message = {"type": "qsl", "new": 3}
    assert wire.read_envelope(wire.for_user(7, message)) == Envelope('{"type":"qsl","new":3}', user=7)
    assert wire.read_envelope(wire.for_connection("ab.1", message)) == Envelope(
        '{"type":"qsl","new":3}', conn="ab.1")
    assert wire.read_envelope(wire.for_node("n1", message, "W1AW")) == Envelope(
        '{"type":"qsl","new":3}', call="W1AW", node="n1")
    assert wire.read_envelope('{"m": {"type": "x"}}') is None  # no addressee
    assert wire.read_envelope('{"u": 1, "m": "text"}') is None
