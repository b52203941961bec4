"""relay/relay.py as a real subprocess in front of a real rigctld (Hamlib dummy rig)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from importlib import import_module

import pytest

from tests.relay.conftest import (
    ORIGIN,
    RELAY_SCRIPT,
    REPO,
    TOKEN,
    Relay,
    Rig,
    start_relay,
    start_rigctld,
    stop_relay,
    stop_rig,
)

SENTINEL_HZ = 7_012_345


@pytest.fixture
def tuned(rig: Rig) -> Iterator[Rig]:
    """The rig parked on a sentinel frequency and mode, so a refused request can be seen to change nothing."""
    rig.set(f"F {SENTINEL_HZ}")
    rig.set("M CW 500")
    yield rig


def assert_unchanged(rig: Rig) -> None:
    assert rig.frequency() == SENTINEL_HZ
    assert rig.mode() == "CW"


def test_qsy_tunes_the_rig(relay: Relay, tuned: Rig) -> None:
    status, headers, body = relay.call("/qsy?freq=14.074")
    assert status == 200, body
    assert body == {"ok": True, "frequency_hz": 14_074_000, "frequency_mhz": 14.074, "mode": None}
    assert tuned.frequency() == 14_074_000
    assert tuned.mode() == "CW"  # no mode asked, none changed
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert headers["Vary"] == "Origin"
    assert headers["Content-Type"].startswith("application/json")


def test_qsy_changes_mode(relay: Relay, tuned: Rig) -> None:
    status, _, body = relay.call("/qsy?freq=21.0745&mode=pktusb")
    assert status == 200, body
    assert body is not None and body["mode"] == "PKTUSB"
    assert tuned.frequency() == 21_074_500
    assert tuned.mode() == "PKTUSB"


def test_qsy_without_origin_header_works_for_command_line_clients(relay: Relay, tuned: Rig) -> None:
    status, headers, _ = relay.call("/qsy?freq=3.573&mode=USB", origin=None)
    assert status == 200
    assert "Access-Control-Allow-Origin" not in headers
    assert tuned.frequency() == 3_573_000


def test_status_reports_the_rig(relay: Relay, rig: Rig) -> None:
    rig.set("F 10136000")
    rig.set("M USB 2400")
    rig.set("T 1")
    try:
        status, _, body = relay.call("/status")
    finally:
        rig.set("T 0")
    assert status == 200, body
    assert body == {
        "frequency_hz": 10_136_000,
        "frequency_mhz": 10.136,
        "mode": "USB",
        "passband_hz": 2400,
        "ptt": True,
    }
    _, _, body = relay.call("/status")
    assert body is not None and body["ptt"] is False


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "error"),
    [
        ("/qsy?freq=14.074", {"origin": "https://evil.example"}, 403, "origin_not_allowed"),
        ("/qsy?freq=14.074", {"origin": "null"}, 403, "origin_not_allowed"),
        ("/qsy?freq=14.074", {"origin": ORIGIN + ":8443"}, 403, "origin_not_allowed"),
        ("/qsy?freq=14.074", {"host": "evil.example"}, 403, "host_not_allowed"),
        ("/qsy?freq=14.074", {"host": "evil.example:8089"}, 403, "host_not_allowed"),
        ("/qsy?freq=14.074", {"host": "127.0.0.1.nip.io"}, 403, "host_not_allowed"),
        ("/qsy?freq=14.074", {"token": None}, 401, "token_missing"),
        ("/qsy?freq=14.074", {"token": "wrong-token-0123456789"}, 401, "token_wrong"),
        ("/qsy?freq=14.074", {"token": TOKEN + "x"}, 401, "token_wrong"),
        ("/qsy?freq=14.074", {"token": ""}, 401, "token_wrong"),
        ("/qsy?freq=nan", {}, 400, "bad_frequency"),
        ("/qsy?freq=inf", {}, 400, "bad_frequency"),
        ("/qsy?freq=-14.074", {}, 400, "bad_frequency"),
        ("/qsy?freq=1e3", {}, 400, "bad_frequency"),
        ("/qsy?freq=0.01", {}, 400, "bad_frequency"),
        ("/qsy?freq=14074", {}, 400, "bad_frequency"),
        ("/qsy?freq=9999999", {}, 400, "bad_frequency"),
        ("/qsy?freq=", {}, 400, "bad_frequency"),
        ("/qsy?freq=14.074%20", {}, 400, "bad_frequency"),
        ("/qsy?freq=14074000%0AF%201", {}, 400, "bad_frequency"),
        ("/qsy", {}, 400, "bad_frequency"),
        ("/qsy?freq=14.074&freq=7.074", {}, 400, "bad_request"),
        ("/qsy?freq=14.074&mode=FOO", {}, 400, "bad_mode"),
        ("/qsy?freq=14.074&mode=USB%200%0AF%201", {}, 400, "bad_mode"),
        ("/qsy?freq=14.074&mode=USB-D", {}, 400, "bad_mode"),
        ("/tune?freq=14.074", {}, 404, "not_found"),
        ("/qsy?freq=14.074", {"method": "POST"}, 405, "method_not_allowed"),
        ("/qsy?freq=14.074", {"method": "DELETE"}, 405, "method_not_allowed"),
    ],
)
def test_refusals_leave_the_rig_alone(
    relay: Relay, tuned: Rig, path: str, kwargs: dict[str, str | None], status: int, error: str
) -> None:
    got_status, headers, body = relay.call(path, **kwargs)  # type: ignore[arg-type]
    assert got_status == status, body
    assert body is not None and body["error"] == error
    assert isinstance(body["message"], str) and body["message"]
    assert headers["Vary"] == "Origin"
    if kwargs.get("origin") or kwargs.get("host"):
        assert "Access-Control-Allow-Origin" not in headers  # a foreign page cannot even read the refusal
    assert_unchanged(tuned)


def test_loopback_host_spellings_are_accepted(relay: Relay, tuned: Rig) -> None:
    for host in (
        "localhost",
        f"localhost:{relay.port}",
        "LOCALHOST.",
        f"localhost.:{relay.port}",
        "127.0.0.1",
        f"[::1]:{relay.port}",
        "[::1]",
    ):
        status, _, body = relay.call("/status", host=host)
        assert status == 200, (host, body)


def test_preflight_for_allowed_origin_grants_private_network(relay: Relay, tuned: Rig) -> None:
    status, headers, body = relay.call(
        "/qsy?freq=14.074",
        method="OPTIONS",
        token=None,
        headers={
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "x-relay-token",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert status == 204
    assert body is None
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert headers["Access-Control-Allow-Private-Network"] == "true"
    assert "GET" in headers["Access-Control-Allow-Methods"]
    assert "x-relay-token" in headers["Access-Control-Allow-Headers"].lower()
    assert headers["Vary"] == "Origin"
    assert_unchanged(tuned)  # a preflight never reaches the rig


def test_preflight_for_foreign_origin_is_refused(relay: Relay, tuned: Rig) -> None:
    status, headers, body = relay.call(
        "/qsy?freq=14.074",
        method="OPTIONS",
        token=None,
        origin="https://evil.example",
        headers={"Access-Control-Request-Method": "GET", "Access-Control-Request-Private-Network": "true"},
    )
    assert status == 403
    assert body is not None and body["error"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in headers
    assert "Access-Control-Allow-Private-Network" not in headers
    assert_unchanged(tuned)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_rigctld_not_listening_gives_503(rig: Rig, tuned: Rig) -> None:
    relay = start_relay("--rigctld", f"127.0.0.1:{_closed_port()}")
    try:
        for path in ("/qsy?freq=14.074", "/status"):
            status, headers, body = relay.call(path)
            assert status == 503
            assert body is not None and body["error"] == "rigctld_not_running"
            assert "not running" in str(body["message"])
            assert headers["Access-Control-Allow-Origin"] == ORIGIN  # the page can show the message
    finally:
        stop_relay(relay)
    assert_unchanged(tuned)


def test_rigctld_stopped_under_the_relay_gives_503() -> None:
    own_rig = start_rigctld("-P", "RIG")
    relay = start_relay("--rigctld", f"127.0.0.1:{own_rig.port}")
    try:
        own_rig.set(f"F {SENTINEL_HZ}")
        assert relay.call("/status")[0] == 200
        stop_rig(own_rig)
        status, _, body = relay.call("/qsy?freq=14.074")
        assert status == 503
        assert body is not None and body["error"] == "rigctld_not_running"
    finally:
        stop_relay(relay)
        stop_rig(own_rig)


def test_hung_rigctld_gives_504() -> None:
    """A listener that accepts (kernel backlog) but never answers stands in for a hung rig."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        relay = start_relay("--rigctld", f"127.0.0.1:{silent.getsockname()[1]}", "--timeout", "0.3")
        try:
            status, _, body = relay.call("/status")
        finally:
            stop_relay(relay)
    assert status == 504
    assert body is not None and body["error"] == "rigctld_timeout"


def test_rig_without_ptt_reports_ptt_unknown_from_real_rprt() -> None:
    """Without -P RIG the dummy answers get_ptt with RPRT -11: /status still works, PTT is null."""
    own_rig = start_rigctld()
    relay = start_relay("--rigctld", f"127.0.0.1:{own_rig.port}")
    try:
        own_rig.set("F 14074000")
        status, _, body = relay.call("/status")
    finally:
        stop_relay(relay)
        stop_rig(own_rig)
    assert status == 200, body
    assert body is not None and body["ptt"] is None
    assert body["frequency_hz"] == 14_074_000
    assert "ENAVAIL" in str(body["ptt_error"])


def test_burst_beyond_capacity_is_rate_limited(rig: Rig, tuned: Rig) -> None:
    relay = start_relay("--rigctld", f"127.0.0.1:{rig.port}", "--rate", "0.2", "--burst", "3")
    try:
        answers = [relay.call("/status") for _ in range(8)]
        limited = [(headers, body) for status, headers, body in answers if status == 429]
        assert answers[0][0] == 200
        assert len(limited) >= 4  # at most 3 + 0.2/s x elapsed can pass
        headers, body = limited[0]
        assert body is not None and body["error"] == "rate_limited"
        assert int(headers["Retry-After"]) >= 1
        status, _, body = relay.call("/qsy?freq=14.074", token=TOKEN)
        assert status == 429
    finally:
        stop_relay(relay)
    assert_unchanged(tuned)


def test_generated_token_is_printed_once_and_required(rig: Rig) -> None:
    relay = start_relay("--rigctld", f"127.0.0.1:{rig.port}", token=None, lines=2)
    try:
        assert relay.first_lines[1].startswith("pairing token: ")
        token = relay.first_lines[1].removeprefix("pairing token: ").strip()
        assert len(token) >= 20
        assert relay.call("/status", token=token)[0] == 200
        assert relay.call("/status", token=TOKEN)[0] == 401
    finally:
        stop_relay(relay)


def test_relay_refuses_to_start_without_an_origin() -> None:
    done = subprocess.run(
        [sys.executable, "-I", str(RELAY_SCRIPT), "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "--origin" in done.stderr


def test_relay_file_imports_only_the_standard_library() -> None:
    import ast

    tree = ast.parse(RELAY_SCRIPT.read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported <= sys.stdlib_module_names | {"__future__"}, imported - sys.stdlib_module_names


def test_console_script_points_at_main() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module_name, _, attribute = scripts["hamsrv-relay"].partition(":")
    assert callable(getattr(import_module(module_name), attribute))


def test_the_rigs_own_ranges_bound_qsy(relay: Relay, rig: Rig) -> None:
    """The dummy rig tunes 150 kHz-1500 MHz (its \\dump_caps): 2.4 GHz is refused before rigctld."""
    before = rig.frequency()
    status, _, body = relay.call("/qsy?freq=2400")
    assert status == 400 and body is not None and "0.15-1500 MHz" in str(body["message"])
    status, _, body = relay.call("/qsy?freq=14074")
    assert status == 400 and body is not None and "did you mean kHz" in str(body["message"])
    assert rig.frequency() == before


def test_an_idle_browser_connection_is_closed(rig: Rig) -> None:
    relay = start_relay("--rigctld", f"127.0.0.1:{rig.port}", "--idle-timeout", "0.5")
    try:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as idle:
            idle.sendall(b"GET /status HTTP/1.1\r\n")  # and never the rest
            began = time.monotonic()
            while idle.recv(4096):
                pass
            assert time.monotonic() - began < 5
    finally:
        stop_relay(relay)
