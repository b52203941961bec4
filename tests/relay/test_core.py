"""The relay's sans-I/O core on strings and bytes: parser, checks, decisions."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.relay import (
    HAMLIB_ERRORS,
    HAMLIB_MODES,
    MAX_HZ,
    MIN_HZ,
    Policy,
    RelayError,
    Request,
    Response,
    RigAction,
    RigProtocolError,
    RigReply,
    TokenBucket,
    _status_body,
    format_reply,
    handle_request,
    is_loopback_host,
    normalize_origin,
    parse_mhz,
    parse_mode,
    parse_ranges,
    parse_reply,
    rig_error,
    set_freq_command,
    set_mode_command,
    split_reply,
)
from tests import testdata

HAMLIB = testdata.TESTDATA / "hamlib"
ORIGIN = "https://hamsrv.example"
TOKEN = "pairing-token-for-tests"
POLICY = Policy(frozenset({ORIGIN}), TOKEN)


def captured(send: str) -> bytes:
    """rigctld's recorded answer (Hamlib 4.5.4 dummy rig) to one command."""
    exchanges = json.loads((HAMLIB / "rigctld_rotctld_capture.json").read_text())["rigctld"]
    return next(e["recv"] for e in exchanges if e["send"] == send).encode("latin-1")


# --- extended response parser -----------------------------------------------------------------


def test_parses_recorded_get_freq() -> None:
    reply, rest = split_reply(captured("+f\n")) or pytest.fail("incomplete")
    assert rest == b""
    assert reply == RigReply("get_freq:", ("Frequency: 14074000",), 0)
    assert reply.command == "get_freq"
    assert reply.value("Frequency") == "14074000"


def test_parses_recorded_set_freq_and_error() -> None:
    assert parse_reply(captured("+F 7074000\n")) == RigReply("set_freq: 7074000", (), 0)
    error = parse_reply(captured("\\set_freq abc\n"))
    assert error.code == -1
    with pytest.raises(RelayError) as info:
        error.raise_for_code()
    assert (info.value.status, info.value.details["hamlib_error"]) == (422, "EINVAL")


def test_parses_recorded_dump_state_with_non_field_records() -> None:
    data = captured("+\\dump_state\n")
    reply = parse_reply(data)
    assert reply.command == "dump_state"
    assert reply.code == 0
    assert reply.records[-1] == "done"
    assert reply.fields == {}  # key=value lines are not "Key: value" fields
    assert format_reply(reply) == data


def test_split_reply_waits_for_rprt_and_keeps_the_rest() -> None:
    data = captured("+f\n") + captured("+F 7074000\n")
    for cut in range(len(captured("+f\n"))):
        assert split_reply(data[:cut]) is None
    first, rest = split_reply(data) or pytest.fail("incomplete")
    assert first.value("Frequency") == "14074000"
    second, rest = split_reply(rest) or pytest.fail("incomplete")
    assert (second.command, rest) == ("set_freq", b"")


@pytest.mark.parametrize(
    "data",
    [b"get_freq:\nRPRT zero\n", b"RPRT\n", b"get_freq:\nRPRT 0", b"a\nRPRT 0\nRPRT 0\n", b"x: 1\n"],
)
def test_parse_reply_refuses_malformed(data: bytes) -> None:
    with pytest.raises(RigProtocolError):
        parse_reply(data)


def test_split_reply_has_a_size_limit() -> None:
    with pytest.raises(RigProtocolError):
        split_reply(b"x" * 70_000)
    with pytest.raises(RigProtocolError):
        split_reply(b"line\n" * 20_000)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_split_reply_never_raises_other_errors(data: bytes) -> None:
    try:
        result = split_reply(data)
    except RigProtocolError:
        return
    if result is not None:
        reply, rest = result
        assert isinstance(reply.code, int)
        assert data.endswith(rest)


_record = st.text(st.characters(codec="latin-1", exclude_characters="\n\r"), max_size=30).filter(
    lambda text: not text.startswith("RPRT")
)


@settings(max_examples=200)
@given(_record, st.lists(_record, max_size=6), st.integers(-99, 99))
def test_format_then_parse_round_trips(echo: str, records: list[str], code: int) -> None:
    reply = RigReply(echo, tuple(records), code)
    assert parse_reply(format_reply(reply)) == reply
    assert split_reply(format_reply(reply) + b"tail") == (reply, b"tail")


def test_every_hamlib_code_has_a_named_error() -> None:
    assert HAMLIB_ERRORS[-11] == "ENAVAIL"
    for code in range(-22, 0):
        error = rig_error(code, "set_freq")
        assert error.details == {"rprt": code, "hamlib_error": HAMLIB_ERRORS[code]}
        assert HAMLIB_ERRORS[code] in error.message and "set_freq" in error.message
        assert 400 <= error.status < 600
    assert rig_error(-5).status == 504
    assert rig_error(-99).details["hamlib_error"] == "UNKNOWN"


# --- commands and parameter checks --------------------------------------------------------------


def test_commands_are_formatted_for_the_extended_protocol() -> None:
    assert set_freq_command(14_074_000) == b"+\\set_freq 14074000\n"
    assert set_mode_command("USB") == b"+\\set_mode USB 0\n"
    assert set_mode_command("CW", -1) == b"+\\set_mode CW -1\n"
    for bad in (MIN_HZ - 1, MAX_HZ + 1, True, 14.074):
        with pytest.raises(ValueError):
            set_freq_command(bad)  # type: ignore[arg-type]
    for mode in ("usb", "USB 0\nT 1", ""):
        with pytest.raises(ValueError):
            set_mode_command(mode)


@pytest.mark.parametrize(
    ("text", "hz"),
    [
        ("14.074", 14_074_000),
        ("0.03", 30_000),
        ("7.0741000000001", 7_074_100),
        ("14.074000000000002", 14_074_000),  # JavaScript float text
        ("7.0000005", 7_000_000),  # half a hertz rounds to even
        ("7.0000015", 7_000_002),
        ("10368", 10_368_000_000),
        ("10500", 10_500_000_000),
        ("0.03", 30_000),
    ],
)
def test_parse_mhz_accepts(text: str, hz: int) -> None:
    assert parse_mhz(text) == hz


@pytest.mark.parametrize(
    "text",
    ["", "nan", "NaN", "inf", "-14.074", "+14.074", "1e3", "14,074", " 14.074", "14.", ".5", "0.0299",
     "10500.000001", "0x10", "١٤.٠٧٤", "14.074\n", "9" * 400],
)  # fmt: skip
def test_parse_mhz_refuses(text: str) -> None:
    with pytest.raises(RelayError) as info:
        parse_mhz(text)
    assert (info.value.status, info.value.error) == (400, "bad_frequency")


@settings(max_examples=300)
@given(st.text(max_size=30))
def test_parse_mhz_answers_any_text_with_a_bounded_int_or_a_400(text: str) -> None:
    try:
        hz = parse_mhz(text)
    except RelayError as exc:
        assert exc.status == 400
    else:
        assert MIN_HZ <= hz <= MAX_HZ


def test_parse_mode_whitelist() -> None:
    assert parse_mode("usb") == "USB"
    assert parse_mode("D-STAR") == "D-STAR"
    assert {"USB", "LSB", "CW", "FM", "AM", "PKTUSB", "RTTY"} <= HAMLIB_MODES
    for bad in ("FT8", "USB ", "USB\n", "", "M USB"):
        with pytest.raises(RelayError):
            parse_mode(bad)


# --- Host, Origin, rate limit ------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.0.0.1:8089", "localhost", "LocalHost:80", "localhost.", "localhost.:8089", "[::1]",
     "[::1]:8089", "[0:0:0:0:0:0:0:1]:8089", "[::1]:65535"],
)  # fmt: skip
def test_loopback_hosts_pass(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host",
    [None, "", "evil.example", "evil.example:8089", "localhost.evil.example", "127.0.0.1.nip.io",
     "127.0.0.2", "127.0.0.1.", "127.1", "2130706433", "0.0.0.0", "::1", "[::1", "[::2]", "[::1]x",
     "[::1]:", "localhost:", "localhost:0", "localhost:65536", "localhost:80:80", "localhost:８０",
     "[::1%lo]:80", "localhost..", "127.0.0.1 ", "localhost, evil.example", "[::ffff:127.0.0.1]"],
)  # fmt: skip
def test_other_hosts_fail(host: str | None) -> None:
    assert not is_loopback_host(host)


@settings(max_examples=500)
@given(st.one_of(st.none(), st.text(max_size=40), st.from_regex(r"\[[0-9a-f:%.]{0,20}\](:[0-9]{0,6})?")))
def test_host_check_never_raises(host: str | None) -> None:
    assert is_loopback_host(host) in (True, False)


@settings(max_examples=200)
@given(st.from_regex(r"[a-z0-9-]{1,20}(\.[a-z0-9-]{1,10}){0,3}\.?(:[0-9]{1,5})?", fullmatch=True))
def test_only_the_two_loopback_names_pass(host: str) -> None:
    name, colon, port = host.partition(":")
    port_ok = not colon or 0 < int(port) <= 65535
    assert is_loopback_host(host) == (name in ("localhost", "localhost.", "127.0.0.1") and port_ok)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://hamsrv.example", "https://hamsrv.example"),
        ("https://HamSrv.Example/", "https://hamsrv.example"),
        ("https://hamsrv.example:443", "https://hamsrv.example"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("https://[2001:db8::1]:8443", "https://[2001:db8::1]:8443"),
    ],
)
def test_normalize_origin(url: str, origin: str) -> None:
    assert normalize_origin(url) == origin


@pytest.mark.parametrize("url", ["hamsrv.example", "ftp://x", "https://x/path", "https://x?q", "https://:1"])
def test_normalize_origin_refuses(url: str) -> None:
    with pytest.raises(ValueError):
        normalize_origin(url)


def test_token_bucket_default_shape() -> None:
    bucket = TokenBucket(rate=10, burst=20, now=100.0)
    assert [bucket.take(100.0) for _ in range(20)] == [0.0] * 20
    assert bucket.take(100.0) == pytest.approx(0.1)
    assert bucket.take(100.1) == 0.0
    assert bucket.take(100.1) > 0
    assert [bucket.take(100.6) for _ in range(5)] == [0.0] * 5
    assert bucket.take(100.6) > 0
    assert [bucket.take(1000.0) for _ in range(20)] == [0.0] * 20  # refills to burst, not beyond
    assert bucket.take(1000.0) > 0


# --- request decisions --------------------------------------------------------------------------


def decide(target: str = "/status", method: str = "GET", **headers: str) -> Response | RigAction:
    sent = {"host": "127.0.0.1:8089", "origin": ORIGIN, "x-relay-token": TOKEN}
    sent.update({name.replace("_", "-"): value for name, value in headers.items()})
    sent = {name: value for name, value in sent.items() if value != "<absent>"}
    return handle_request(Request(method, target, sent), POLICY, TokenBucket(10, 20, 0.0), 0.0)


def error_of(decision: Response | RigAction) -> tuple[int, str]:
    assert isinstance(decision, Response)
    return decision.status, json.loads(decision.body)["error"]


def test_qsy_decision_carries_exact_commands() -> None:
    action = decide("/qsy?freq=14.074&mode=usb")
    assert isinstance(action, RigAction)
    assert action.commands == (b"+\\set_freq 14074000\n", b"+\\set_mode USB 0\n")
    assert action.cors_origin == ORIGIN
    response = action.finish([parse_reply(b"set_freq: 14074000\nRPRT 0\n")] * 2)
    assert response.status == 200
    assert ("Access-Control-Allow-Origin", ORIGIN) in response.headers


def test_rig_refusal_becomes_named_json_error() -> None:
    action = decide("/qsy?freq=14.074")
    assert isinstance(action, RigAction)
    response = action.finish([parse_reply(captured("\\set_freq abc\n"))])
    assert response.status == 422
    body = json.loads(response.body)
    assert body == {"error": "rig_error", "message": body["message"], "rprt": -1, "hamlib_error": "EINVAL"}


def test_status_from_recorded_style_replies() -> None:
    action = decide("/status")
    assert isinstance(action, RigAction)
    freq = parse_reply(captured("+f\n"))
    mode = parse_reply(b"get_mode:\nMode: USB\nPassband: 2400\nRPRT 0\n")
    ptt_missing = parse_reply(b"get_ptt:\n" + captured("t\n"))
    body = json.loads(action.finish([freq, mode, ptt_missing]).body)
    assert body["frequency_hz"] == 14_074_000 and body["mode"] == "USB" and body["passband_hz"] == 2400
    assert body["ptt"] is None and "ENAVAIL" in body["ptt_error"]
    keyed = json.loads(action.finish([freq, mode, parse_reply(b"get_ptt:\nPTT: 1\nRPRT 0\n")]).body)
    assert keyed["ptt"] is True
    garbled = action.finish([parse_reply(b"get_freq:\nRPRT 0\n"), mode, ptt_missing])
    assert error_of(garbled) == (502, "rigctld_protocol")


def test_checks_come_in_a_safe_order() -> None:
    # A rebinding page is refused before anything else, even with a valid token.
    assert error_of(decide(host="evil.example")) == (403, "host_not_allowed")
    assert error_of(decide(origin="https://evil.example")) == (403, "origin_not_allowed")
    assert error_of(decide(x_relay_token="<absent>")) == (401, "token_missing")
    assert error_of(decide("/qsy?freq=abc", x_relay_token="nope")) == (401, "token_wrong")
    assert error_of(decide("/qsy?freq=abc")) == (400, "bad_frequency")
    assert error_of(decide(method="PUT")) == (405, "method_not_allowed")


def test_preflight_needs_no_token_but_an_allowed_origin() -> None:
    response = decide(
        "/qsy", "OPTIONS", x_relay_token="<absent>", access_control_request_private_network="true"
    )
    assert isinstance(response, Response) and response.status == 204
    assert ("Access-Control-Allow-Private-Network", "true") in response.headers
    plain = decide("/qsy", "OPTIONS", x_relay_token="<absent>")
    assert isinstance(plain, Response) and plain.status == 204
    assert all(name != "Access-Control-Allow-Private-Network" for name, _ in plain.headers)
    assert error_of(decide("/qsy", "OPTIONS", origin="<absent>")) == (403, "origin_not_allowed")


def test_a_khz_figure_is_refused_with_a_hint() -> None:
    """Issue 10: qsy?freq=14074 (kHz, as every spot shows) tuned the rig to 14,074 MHz."""
    with pytest.raises(RelayError) as info:
        parse_mhz("14074")
    assert info.value.status == 400 and "did you mean kHz (14.074 MHz)?" in str(info.value)


def test_requests_failing_origin_or_token_do_not_spend_the_rate_limit() -> None:
    """Issue 10: the bucket was spent before the Origin and token checks, so any web page could starve
    the real one."""
    bucket = TokenBucket(10, 5, 0.0)
    hostile = [Request("GET", "/status", {"host": "localhost", "origin": "https://evil.example"}),
               Request("GET", "/status", {"host": "localhost", "x-relay-token": "guess"})]
    for _ in range(50):
        for request in hostile:
            assert isinstance(handle_request(request, POLICY, bucket, 0.0), Response)
    good = Request("GET", "/status", {"host": "localhost", "x-relay-token": TOKEN})
    assert isinstance(handle_request(good, POLICY, bucket, 0.0), RigAction)


def test_rate_limit_decision_has_retry_after() -> None:
    bucket = TokenBucket(10, 20, 0.0)
    request = Request("GET", "/status", {"host": "localhost", "x-relay-token": TOKEN})
    decisions = [handle_request(request, POLICY, bucket, 0.0) for _ in range(21)]
    assert all(isinstance(d, RigAction) for d in decisions[:20])
    assert error_of(decisions[20]) == (429, "rate_limited")
    assert isinstance(decisions[20], Response)
    assert ("Retry-After", "1") in decisions[20].headers


@settings(max_examples=300)
@given(
    st.sampled_from(["GET", "OPTIONS", "POST", "BREW"]),
    st.text(max_size=60),
    st.dictionaries(
        st.sampled_from(["host", "origin", "x-relay-token", "access-control-request-private-network"]),
        st.text(max_size=30),
    ),
)
def test_any_request_gets_a_decision(method: str, target: str, headers: dict[str, str]) -> None:
    decision = handle_request(Request(method, target, headers), POLICY, TokenBucket(10, 20, 0.0), 0.0)
    assert isinstance(decision, (Response, RigAction))
    if isinstance(decision, Response) and decision.body:
        json.loads(decision.body)


# ---- hardening (issue 10)
def test_the_rigs_own_ranges_come_from_dump_caps() -> None:
    capture = json.loads((testdata.TESTDATA / "hamlib" / "rigctld_rotctld_capture.json").read_text())
    text = next(step["recv"] for step in capture["rigctld"] if step.get("send") == "\\dump_caps\n")
    reply = parse_reply(("dump_caps:\n" + text).encode("latin-1"))
    ranges = parse_ranges(reply)
    assert ranges == ((150_000, 1_500_000_000),)
    policy = Policy(frozenset({ORIGIN}), TOKEN, ranges)
    headers = {"host": "localhost", "x-relay-token": TOKEN, "origin": ORIGIN}
    assert isinstance(handle_request(Request("GET", "/qsy?freq=144.300", headers), policy,
                                     TokenBucket(10, 10, 0.0), 0.0), RigAction)
    refused = handle_request(Request("GET", "/qsy?freq=2400", headers), policy, TokenBucket(10, 10, 0.0), 0.0)
    assert error_of(refused) == (400, "bad_frequency")
    assert isinstance(refused, Response) and b"0.15-1500 MHz" in refused.body


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400", "9" * 5000])
def test_a_non_finite_frequency_from_the_rig_is_a_protocol_error(value: str) -> None:
    replies = (RigReply("get_freq:", (f"Frequency: {value}",), 0), RigReply("get_mode:", ("Mode: USB", "Passband: 2400"), 0),
               RigReply("get_ptt:", ("PTT: 0",), 0))
    with pytest.raises(RigProtocolError):
        _status_body(replies)
