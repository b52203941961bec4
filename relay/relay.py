#!/usr/bin/env python3
"""hamsrv-relay: lets the hamsrv web page tune the radio attached to this computer.

The browser calls http://127.0.0.1:8089/qsy?freq=14.074&mode=USB and the relay turns that into
Hamlib rigctld commands (extended response protocol) on 127.0.0.1:4532.

One file, standard library only, so it can be copied to any shack PC and run as
``python3 relay.py``.  The first half is a sans-I/O core (request checks -> decision, rigctld reply
parser, command formatting) that never touches a socket; the second half is a thin
``http.server`` wrapper around it.  See README.md beside this file for the security model.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import json
import math
import os
import re
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "DEFAULT_LISTEN",
    "DEFAULT_RIGCTLD",
    "HAMLIB_ERRORS",
    "HAMLIB_MODES",
    "MAX_HZ",
    "MIN_HZ",
    "parse_ranges",
    "Policy",
    "RelayError",
    "Request",
    "Response",
    "RigAction",
    "RigProtocolError",
    "RigReply",
    "RigctldClient",
    "TokenBucket",
    "error_response",
    "format_reply",
    "handle_request",
    "is_loopback_host",
    "main",
    "normalize_origin",
    "parse_mhz",
    "parse_mode",
    "parse_reply",
    "rig_error",
    "set_freq_command",
    "set_mode_command",
    "split_reply",
]

DEFAULT_LISTEN = ("127.0.0.1", 8089)
DEFAULT_RIGCTLD = ("127.0.0.1", 4532)
TOKEN_HEADER = "X-Relay-Token"

# ---------------------------------------------------------------------------------------------
# Sans-I/O core
# ---------------------------------------------------------------------------------------------

#: rigctld ``RPRT -n`` codes are the negated ``enum rig_errcode_e`` of Hamlib's rig.h.
HAMLIB_ERRORS: dict[int, str] = {
    0: "OK",
    -1: "EINVAL",
    -2: "ECONF",
    -3: "ENOMEM",
    -4: "ENIMPL",
    -5: "ETIMEOUT",
    -6: "EIO",
    -7: "EINTERNAL",
    -8: "EPROTO",
    -9: "ERJCTED",
    -10: "ETRUNC",
    -11: "ENAVAIL",
    -12: "ENTARGET",
    -13: "BUSERROR",
    -14: "BUSBUSY",
    -15: "EARG",
    -16: "EVFO",
    -17: "EDOM",
    -18: "EDEPRECATED",
    -19: "ESECURITY",
    -20: "EPOWER",
    -21: "ELIMIT",
    -22: "EACCESS",
}

_HAMLIB_ERROR_TEXT: dict[str, str] = {
    "EINVAL": "invalid parameter",
    "ECONF": "invalid configuration",
    "ENOMEM": "out of memory",
    "ENIMPL": "function not implemented by this rig",
    "ETIMEOUT": "communication with the rig timed out",
    "EIO": "I/O error talking to the rig",
    "EINTERNAL": "internal Hamlib error",
    "EPROTO": "protocol error talking to the rig",
    "ERJCTED": "command rejected by the rig",
    "ETRUNC": "argument truncated",
    "ENAVAIL": "function not available for this rig",
    "ENTARGET": "VFO not targetable",
    "BUSERROR": "error talking on the bus",
    "BUSBUSY": "collision on the bus",
    "EARG": "invalid argument",
    "EVFO": "invalid VFO",
    "EDOM": "argument out of domain",
    "EDEPRECATED": "function deprecated",
    "ESECURITY": "security error",
    "EPOWER": "rig is not powered on",
    "ELIMIT": "limit exceeded",
    "EACCESS": "access denied",
}

# Which HTTP status fits a rig error: our own input was already validated, so a value the rig
# refuses is "unprocessable"; a rig that is busy or off is "unavailable"; a rig timeout is a gateway
# timeout; everything else is a bad gateway.
_RIG_ERROR_STATUS: dict[str, int] = {
    "EINVAL": 422,
    "EARG": 422,
    "EDOM": 422,
    "ELIMIT": 422,
    "ERJCTED": 422,
    "ETIMEOUT": 504,
    "BUSBUSY": 503,
    "EPOWER": 503,
}

#: Canonical Hamlib 4.5 mode names (``rig_strrmode``); anything else is refused before it reaches
#: rigctld, which would otherwise answer ``RPRT 0`` and silently ignore an unknown mode.
HAMLIB_MODES: frozenset[str] = frozenset(
    {
        "AM", "CW", "USB", "LSB", "RTTY", "FM", "WFM", "CWR", "RTTYR", "AMS", "PKTLSB", "PKTUSB",
        "PKTFM", "PKTFMN", "ECSSUSB", "ECSSLSB", "FAX", "SAM", "SAL", "SAH", "DSB", "FMN", "PKTAM",
        "P25", "D-STAR", "DPMR", "NXDN-VN", "NXDN-N", "DCR", "AMN", "PSK", "PSKR", "C4FM", "SPEC",
        "CWN", "IQ", "ISBUSB", "ISBLSB",
    }
)  # fmt: skip

#: 30 kHz .. 10.5 GHz: what a rig that does not list its own ranges may be tuned to. Wide enough for
#: every HF/VHF/UHF/SHF rig, narrow enough that a kHz figure sent as MHz (14074) is refused.
MIN_HZ = 30_000
MAX_HZ = 10_500_000_000
#: Seconds a browser connection may sit idle (or dribble its request) before its thread lets go.
HANDLER_TIMEOUT = 10.0

#: Passband sent with ``M``: 0 = the backend's normal filter for the new mode (rigctl(1)); -1 would
#: keep the old mode's filter, e.g. a 500 Hz CW filter after switching to USB.
DEFAULT_PASSBAND = 0

_MHZ_SYNTAX = re.compile(r"[0-9]{1,7}(?:\.[0-9]{1,18})?")  # JS float text has up to 17 decimals
_PORT_SYNTAX = re.compile(r"[0-9]{1,5}")
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1"})


class RelayError(Exception):
    """A refusal or failure that becomes a JSON error answer with an HTTP status."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        details: Mapping[str, object] | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.details = dict(details or {})
        self.headers = tuple(headers)


class RigProtocolError(ValueError):
    """rigctld sent something that is not an extended-protocol reply (the parser's only error)."""


def rig_error(code: int, command: str = "") -> RelayError:
    """Translate a rigctld ``RPRT code`` into a named, explained JSON error."""
    name = HAMLIB_ERRORS.get(code, "UNKNOWN")
    text = _HAMLIB_ERROR_TEXT.get(name, "unknown Hamlib error")
    where = f" for {command}" if command else ""
    return RelayError(
        _RIG_ERROR_STATUS.get(name, 502),
        "rig_error",
        f"rigctld answered RPRT {code} ({name}: {text}){where}",
        details={"rprt": code, "hamlib_error": name},
    )


@dataclass(frozen=True)
class RigReply:
    """One extended-protocol reply: echo line, data records, final ``RPRT`` code."""

    echo: str
    records: tuple[str, ...]
    code: int

    @property
    def command(self) -> str:
        """Long command name from the echo line (``set_freq: 14074000`` -> ``set_freq``)."""
        return self.echo.partition(":")[0]

    @property
    def fields(self) -> dict[str, str]:
        """``Key: value`` records; other records (e.g. ``\\dump_state`` lines) are left out."""
        result: dict[str, str] = {}
        for record in self.records:
            key, sep, value = record.partition(": ")
            if sep and key:
                result.setdefault(key, value)
        return result

    def value(self, key: str) -> str:
        """A required field; a missing one means rigctld spoke a dialect we do not understand."""
        try:
            return self.fields[key]
        except KeyError:
            raise RigProtocolError(f"rigctld reply to {self.command or '?'} has no {key!r} field") from None

    def raise_for_code(self) -> None:
        if self.code != 0:
            raise rig_error(self.code, self.command)


#: A reply larger than this is refused: \dump_state is ~1.5 KiB, \dump_caps ~8 KiB (security limit).
MAX_REPLY_BYTES = 65_536


def _parse_rprt(line: str) -> int:
    number = line[len("RPRT ") :]
    if not re.fullmatch(r"-?[0-9]{1,6}", number):
        raise RigProtocolError(f"malformed RPRT record {line[:40]!r}")
    return int(number)


def split_reply(buffer: bytes, max_bytes: int = MAX_REPLY_BYTES) -> tuple[RigReply, bytes] | None:
    """Take one complete ``+``-separated reply off the front of ``buffer``.

    Returns ``(reply, rest)``, or None when more bytes are needed.  Raises only RigProtocolError.
    """
    end = 0
    while True:
        newline = buffer.find(b"\n", end)
        if newline < 0:
            if len(buffer) > max_bytes:
                raise RigProtocolError(f"rigctld reply longer than {max_bytes} bytes without RPRT")
            return None
        if buffer.startswith(b"RPRT", end):
            return parse_reply(buffer[: newline + 1]), buffer[newline + 1 :]
        end = newline + 1
        if end > max_bytes:
            raise RigProtocolError(f"rigctld reply longer than {max_bytes} bytes without RPRT")


def parse_reply(data: bytes) -> RigReply:
    """Parse exactly one complete reply (``echo\\nrecord\\n...RPRT n\\n``)."""
    text = data.decode("latin-1")
    if not text.endswith("\n"):
        raise RigProtocolError("rigctld reply is not terminated by a newline")
    lines = [line.removesuffix("\r") for line in text[:-1].split("\n")]
    last = lines.pop()
    if not last.startswith("RPRT"):
        raise RigProtocolError(f"rigctld reply does not end with RPRT: {last[:40]!r}")
    code = _parse_rprt(last)
    if any(line.startswith("RPRT") for line in lines):
        raise RigProtocolError("rigctld reply holds more than one RPRT record")
    echo = lines.pop(0) if lines else ""
    return RigReply(echo, tuple(lines), code)


def format_reply(reply: RigReply) -> bytes:
    """Render a reply the way rigctld does (used by tests and for logging)."""
    lines = ([reply.echo] if reply.echo or reply.records else []) + list(reply.records)
    return "".join(f"{line}\n" for line in lines).encode("latin-1") + f"RPRT {reply.code}\n".encode()


GET_FREQ = b"+\\get_freq\n"
DUMP_CAPS = b"+\\dump_caps\n"
_RANGE_LINE = re.compile(r"\t([0-9]{1,12}) Hz - ([0-9]{1,12}) Hz")
GET_MODE = b"+\\get_mode\n"
GET_PTT = b"+\\get_ptt\n"


def set_freq_command(hz: int) -> bytes:
    """``+\\set_freq HZ``; only a validated integer ever reaches rigctld (spaces would inject)."""
    if isinstance(hz, bool) or not isinstance(hz, int) or not MIN_HZ <= hz <= MAX_HZ:
        raise ValueError(f"frequency {hz!r} Hz outside {MIN_HZ}..{MAX_HZ}")
    return f"+\\set_freq {hz}\n".encode()


def set_mode_command(mode: str, passband: int = DEFAULT_PASSBAND) -> bytes:
    """``+\\set_mode MODE PASSBAND``; the mode must be a whitelisted Hamlib name."""
    if mode not in HAMLIB_MODES:
        raise ValueError(f"mode {mode!r} is not a Hamlib mode name")
    if isinstance(passband, bool) or not isinstance(passband, int) or not -1 <= passband <= 1_000_000:
        raise ValueError(f"passband {passband!r} outside -1..1000000 Hz")
    return f"+\\set_mode {mode} {passband}\n".encode()


Ranges = tuple[tuple[int, int], ...]


def parse_ranges(reply: RigReply) -> Ranges:
    """The receive ranges (Hz) of a ``\\dump_caps`` reply: the lines ``\t150000 Hz - 1500000000 Hz``
    under each ``RX ranges`` heading. Empty when the rig lists none."""
    ranges: list[tuple[int, int]] = []
    in_rx = False
    for record in reply.records:
        if not record.startswith("\t"):
            in_rx = record.startswith("RX ranges") and "status" not in record
        elif in_rx and (match := _RANGE_LINE.fullmatch(record)):
            low, high = int(match[1]), int(match[2])
            if 0 < low <= high:
                ranges.append((low, high))
    return tuple(sorted(set(ranges)))


def check_in_ranges(hz: int, text: str, ranges: Ranges) -> None:
    """Refuse a frequency the rig cannot tune, with a hint when the figure was plainly kHz."""
    if any(low <= hz <= high for low, high in ranges):
        return
    shown = ", ".join(f"{low / 1e6:g}-{high / 1e6:g}" for low, high in ranges)
    message = f"freq {text} MHz is outside {shown} MHz"
    if any(low <= hz // 1000 <= high for low, high in ranges):
        message += f"; did you mean kHz ({Decimal(text) / 1000} MHz)?"
    raise RelayError(400, "bad_frequency", message)


def parse_mhz(text: str) -> int:
    """Frequency in MHz as the old page sends it (``14.074``) -> whole Hz, bounds checked.

    Decimal, not float, so 14.074 is exactly 14074000; NaN, signs, exponents and spaces fail syntax.
    """
    if not _MHZ_SYNTAX.fullmatch(text):
        raise RelayError(
            400, "bad_frequency", f"freq must be MHz like 14.074 (digits and one dot), got {text[:40]!r}"
        )
    hz = int((Decimal(text) * 1_000_000).to_integral_value(rounding=ROUND_HALF_EVEN))
    check_in_ranges(hz, text, ((MIN_HZ, MAX_HZ),))
    return hz


def parse_mode(text: str) -> str:
    """Hamlib mode name, case-insensitive on input, canonical upper case out."""
    mode = text.upper()
    if mode not in HAMLIB_MODES:
        raise RelayError(
            400,
            "bad_mode",
            f"mode {text[:20]!r} is not a Hamlib mode; use one of {', '.join(sorted(HAMLIB_MODES))}",
        )
    return mode


def is_loopback_host(host: str | None) -> bool:
    """Is this ``Host`` header 127.0.0.1, localhost or [::1] (optional port, trailing dot)?

    The DNS-rebinding defence: a page on evil.example whose name was re-pointed at 127.0.0.1 still
    sends ``Host: evil.example``.  Never raises.
    """
    if not host or not host.isascii():
        return False
    host = host.lower()
    port: str | None
    if host.startswith("["):
        inner, bracket, rest = host[1:].partition("]")
        if not bracket or "%" in inner or not _is_ipv6_loopback(inner):
            return False
        if rest and not rest.startswith(":"):
            return False
        port = rest[1:] if rest else None
    else:
        name, colon, port_text = host.partition(":")
        port = port_text if colon else None
        if name == "localhost.":
            name = "localhost"
        if name not in _LOOPBACK_NAMES:
            return False
    return port is None or (bool(_PORT_SYNTAX.fullmatch(port)) and 0 < int(port) <= 65535)


def _is_ipv6_loopback(text: str) -> bool:
    try:
        return ipaddress.IPv6Address(text) == ipaddress.IPv6Address("::1")
    except ValueError:
        return False


def normalize_origin(url: str) -> str:
    """A configured origin (``https://hamsrv.example/``) in the form browsers send it."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"origin {url!r} must look like https://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"origin {url!r} must not have a path, query, fragment or user")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"origin {url!r} has a bad port") from exc
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    default_port = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default_port) else "")


class TokenBucket:
    """Rate limit: ``rate`` requests per second, bursts up to ``burst``; the clock is passed in."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if not rate > 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._updated = now

    def take(self, now: float) -> float:
        """Spend one token: 0.0 when allowed, else the seconds to wait before retrying."""
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        self._updated = now
        if self._tokens >= 1.0 - 1e-9:  # float dust must not refuse a request that is due
            self._tokens = max(0.0, self._tokens - 1.0)
            return 0.0
        return (1.0 - self._tokens) / self.rate


@dataclass(frozen=True)
class Policy:
    """Who may call the relay: exact browser origins and the pairing token."""

    origins: frozenset[str]
    token: str
    ranges: Ranges = ((MIN_HZ, MAX_HZ),)  # what the rig tunes (its \\dump_caps), else the fallback


@dataclass(frozen=True)
class Request:
    """An HTTP request head; header names in lower case, repeated headers joined with ``, ``."""

    method: str
    target: str
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class RigAction:
    """A request that passed every check and now needs rigctld: send ``commands``, then ``finish``."""

    commands: tuple[bytes, ...]
    interpret: Callable[[Sequence[RigReply]], dict[str, object]] = field(compare=False)
    cors_origin: str | None

    def finish(self, replies: Sequence[RigReply]) -> Response:
        """Turn rigctld's replies into the JSON answer (or a JSON rig error)."""
        try:
            return json_response(200, self.interpret(replies), self.cors_origin)
        except RelayError as exc:
            return error_response(exc, self.cors_origin)
        except RigProtocolError as exc:
            return error_response(RelayError(502, "rigctld_protocol", str(exc)), self.cors_origin)


_ALLOWED_METHODS = "GET, OPTIONS"


def _cors_headers(origin: str | None) -> list[tuple[str, str]]:
    headers = [("Vary", "Origin")]
    if origin:
        headers.append(("Access-Control-Allow-Origin", origin))
    return headers


def json_response(
    status: int, body: Mapping[str, object], cors_origin: str | None, extra: Sequence[tuple[str, str]] = ()
) -> Response:
    headers = [
        ("Content-Type", "application/json; charset=utf-8"),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        *_cors_headers(cors_origin),
        *extra,
    ]
    return Response(status, json.dumps(body).encode() + b"\n", tuple(headers))


def error_response(exc: RelayError, cors_origin: str | None = None) -> Response:
    body: dict[str, object] = {"error": exc.error, "message": exc.message, **exc.details}
    return json_response(exc.status, body, cors_origin, exc.headers)


def _single_query(query: str) -> dict[str, str]:
    params = parse_qs(query, keep_blank_values=True)
    repeated = sorted(name for name, values in params.items() if len(values) > 1)
    if repeated:
        raise RelayError(400, "bad_request", f"query parameter given more than once: {', '.join(repeated)}")
    return {name: values[0] for name, values in params.items()}


def _status_body(replies: Sequence[RigReply]) -> dict[str, object]:
    freq_reply, mode_reply, ptt_reply = replies
    freq_reply.raise_for_code()
    mode_reply.raise_for_code()
    try:
        hz = int(float(freq_reply.value("Frequency")))  # OverflowError on inf, ValueError on nan
        passband = int(mode_reply.value("Passband"))
    except (ValueError, OverflowError) as exc:
        raise RigProtocolError(f"rigctld sent a non-numeric frequency or passband: {exc}") from None
    body: dict[str, object] = {
        "frequency_hz": hz,
        "frequency_mhz": hz / 1_000_000,
        "mode": mode_reply.value("Mode"),
        "passband_hz": passband,
    }
    # Many stations key by VOX or a serial line Hamlib does not read: PTT unknown is not an error.
    if ptt_reply.code in (-4, -11):
        body["ptt"] = None
        body["ptt_error"] = rig_error(ptt_reply.code, ptt_reply.command).message
    else:
        ptt_reply.raise_for_code()
        body["ptt"] = ptt_reply.value("PTT") not in ("", "0")
    return body


def _qsy_action(params: Mapping[str, str], cors_origin: str | None, ranges: Ranges) -> RigAction:
    if "freq" not in params:
        raise RelayError(400, "bad_frequency", "missing freq (MHz), e.g. /qsy?freq=14.074&mode=USB")
    hz = parse_mhz(params["freq"])
    check_in_ranges(hz, params["freq"], ranges)
    mode = parse_mode(params["mode"]) if params.get("mode") else None
    commands = [set_freq_command(hz)] + ([set_mode_command(mode)] if mode else [])

    def interpret(replies: Sequence[RigReply]) -> dict[str, object]:
        for reply in replies:
            reply.raise_for_code()
        return {"ok": True, "frequency_hz": hz, "frequency_mhz": hz / 1_000_000, "mode": mode}

    return RigAction(tuple(commands), interpret, cors_origin)


def handle_request(request: Request, policy: Policy, bucket: TokenBucket, now: float) -> Response | RigAction:
    """Every check, in order: Host (rebinding), Origin, preflight, token, rate, route, parameters.
    The rate is spent only by callers that passed the Origin and token checks, so another web page
    cannot starve the real one."""
    headers = request.headers
    if not is_loopback_host(headers.get("host")):
        return error_response(
            RelayError(403, "host_not_allowed", "Host header must be 127.0.0.1, localhost or [::1]")
        )
    origin = headers.get("origin")
    if origin is not None and origin not in policy.origins:
        return error_response(RelayError(403, "origin_not_allowed", f"origin {origin[:100]!r} may not call"))
    if request.method == "OPTIONS":
        return _preflight(request, origin)
    try:
        if request.method != "GET":
            raise RelayError(405, "method_not_allowed", "use GET", headers=[("Allow", _ALLOWED_METHODS)])
        presented = headers.get(TOKEN_HEADER.lower())
        if presented is None:
            raise RelayError(401, "token_missing", f"send the pairing token in the {TOKEN_HEADER} header")
        if not hmac.compare_digest(
            presented.encode("utf-8", "surrogateescape"), policy.token.encode("utf-8", "surrogateescape")
        ):
            raise RelayError(401, "token_wrong", f"the {TOKEN_HEADER} header does not match this relay")
        wait = bucket.take(now)
        if wait:
            raise RelayError(
                429,
                "rate_limited",
                f"more than {bucket.rate:g} requests/s (burst {bucket.burst}); retry later",
                headers=[("Retry-After", str(max(1, math.ceil(wait))))],
            )
        target = urlsplit(request.target)
        params = _single_query(target.query)
        if target.path == "/qsy":
            return _qsy_action(params, origin, policy.ranges)
        if target.path == "/status":
            return RigAction((GET_FREQ, GET_MODE, GET_PTT), _status_body, origin)
        raise RelayError(404, "not_found", "paths are /qsy?freq=MHZ[&mode=MODE] and /status")
    except RelayError as exc:
        return error_response(exc, origin)


def _preflight(request: Request, origin: str | None) -> Response:
    """CORS + Private Network Access preflight; Chrome's LNA permission needs nothing more."""
    if origin is None:
        return error_response(RelayError(403, "origin_not_allowed", "a preflight needs an Origin header"))
    headers = [
        ("Access-Control-Allow-Methods", _ALLOWED_METHODS),
        ("Access-Control-Allow-Headers", TOKEN_HEADER),
        ("Access-Control-Max-Age", "600"),
    ]
    if request.headers.get("access-control-request-private-network", "").lower() == "true":
        headers.append(("Access-Control-Allow-Private-Network", "true"))
    return Response(204, b"", (*_cors_headers(origin), *headers))


# ---------------------------------------------------------------------------------------------
# I/O: rigctld client and HTTP server
# ---------------------------------------------------------------------------------------------


class _RigHungUp(ConnectionError):
    """rigctld closed the connection before answering."""


class RigctldClient:
    """One reused rigctld connection, serialized by a lock, every wait bounded by ``timeout``.

    Reused because rigctld 4.5.4 resets or drops a few percent of freshly accepted connections
    (seen with hundreds of quick connect/query/close cycles).  Every command we send is idempotent
    (set or get), so a connection that dies before answering is retried once on a fresh one.
    """

    def __init__(self, host: str, port: int, timeout: float = 2.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._lock = threading.Lock()
        self._conn: socket.socket | None = None

    def run(self, commands: Sequence[bytes]) -> list[RigReply]:
        where = f"{self.host}:{self.port}"
        if not self._lock.acquire(timeout=self.timeout):
            raise RelayError(504, "rig_busy", f"rigctld at {where} is busy with another request")
        try:
            deadline = time.monotonic() + self.timeout
            try:
                try:
                    return self._run_on_connection(commands, deadline)
                except ConnectionError as exc:
                    if isinstance(exc, ConnectionRefusedError):
                        raise
                    self.close()
                    return self._run_on_connection(commands, deadline)
            except BaseException:
                self.close()  # a half-read reply must never be taken as the next command's answer
                raise
        except ConnectionRefusedError:
            raise RelayError(
                503,
                "rigctld_not_running",
                f"rigctld is not running at {where} (connection refused); start it, e.g. "
                f"rigctld -m MODEL -r /dev/ttyUSB0 -t {self.port}",
            ) from None
        except TimeoutError:
            raise RelayError(
                504, "rigctld_timeout", f"rigctld at {where} did not answer within {self.timeout:g} s"
            ) from None
        except RigProtocolError as exc:
            raise RelayError(502, "rigctld_protocol", f"rigctld at {where}: {exc}") from None
        except OSError as exc:
            raise RelayError(502, "rigctld_unreachable", f"rigctld at {where}: {exc}") from None
        finally:
            self._lock.release()

    def tuning_ranges(self) -> Ranges:
        """The rig's receive ranges from ``\\dump_caps``; empty when it lists none."""
        [reply] = self.run([DUMP_CAPS])
        reply.raise_for_code()
        return parse_ranges(reply)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _run_on_connection(self, commands: Sequence[bytes], deadline: float) -> list[RigReply]:
        if self._conn is None:
            self._conn = socket.create_connection((self.host, self.port), timeout=self.timeout)
        return [self._exchange(self._conn, command, deadline) for command in commands]

    @staticmethod
    def _exchange(conn: socket.socket, command: bytes, deadline: float) -> RigReply:
        conn.settimeout(max(0.001, deadline - time.monotonic()))
        conn.sendall(command)
        buffer = b""
        while True:
            parsed = split_reply(buffer)
            if parsed is not None:
                reply, rest = parsed
                if rest:
                    raise RigProtocolError(f"rigctld sent more than one reply: {rest[:40]!r}")
                return reply
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            conn.settimeout(remaining)
            chunk = conn.recv(4096)
            if not chunk:
                raise _RigHungUp("rigctld closed the connection before answering")
            buffer += chunk


class _Handler(BaseHTTPRequestHandler):
    server: _RelayServer
    server_version = "hamsrv-relay/1"

    @property
    def timeout(self) -> float:  # type: ignore[override]
        """The socket's timeout: an idle or dribbling browser connection cannot hold a thread."""
        return self.server.idle_timeout

    def version_string(self) -> str:
        return self.server_version

    def _serve(self) -> None:
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        decision = self.server.decide(Request(self.command, self.path, headers))
        if isinstance(decision, RigAction):
            action = decision
            try:
                decision = action.finish(self.server.rig.run(action.commands))
            except RelayError as exc:
                decision = error_response(exc, action.cors_origin)
        self._send(decision)

    do_GET = do_OPTIONS = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed requests get JSON too, never an HTML page."""
        self.close_connection = True
        self._send(error_response(RelayError(code, "bad_request", message or explain or "bad request")))

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"relay: {self.address_string()} {format % args}\n")


class _RelayServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, listen: tuple[str, int], policy: Policy, bucket: TokenBucket, rig: RigctldClient,
        idle_timeout: float = HANDLER_TIMEOUT,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in listen[0] else socket.AF_INET
        super().__init__(listen, _Handler)
        self.policy = policy
        self.bucket = bucket
        self.rig = rig
        self.idle_timeout = idle_timeout
        self._decide_lock = threading.Lock()

    def decide(self, request: Request) -> Response | RigAction:
        with self._decide_lock:  # the bucket is shared by the handler threads
            return handle_request(request, self.policy, self.bucket, time.monotonic())


def _host_port(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _origin(text: str) -> str:
    try:
        return normalize_origin(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hamsrv-relay", description="Let an allowed web page tune the local radio through rigctld."
    )
    parser.add_argument(
        "--listen",
        type=_host_port,
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help="where browsers connect (default 127.0.0.1:8089; port 0 = any free port)",
    )
    parser.add_argument(
        "--rigctld",
        type=_host_port,
        default=DEFAULT_RIGCTLD,
        metavar="HOST:PORT",
        help="Hamlib rigctld address (default 127.0.0.1:4532)",
    )
    parser.add_argument(
        "--origin",
        type=_origin,
        action="append",
        default=[],
        metavar="URL",
        help="web page origin allowed to call the relay, e.g. https://hamsrv.example (repeatable; required)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("HAMSRV_RELAY_TOKEN"),
        help="pairing token (default: $HAMSRV_RELAY_TOKEN, else a random one, printed once)",
    )
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for rigctld (default 2)")
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second (default 10)")
    parser.add_argument("--idle-timeout", type=float, default=HANDLER_TIMEOUT,
                        help=f"seconds a browser connection may stay silent (default {HANDLER_TIMEOUT:g})")
    parser.add_argument("--burst", type=int, default=20, help="burst size (default 20)")
    return parser


def _ranges_of(rig: RigctldClient) -> Ranges:
    """The rig's own ranges when rigctld answers now, else the 30 kHz-10.5 GHz fallback."""
    try:
        ranges = rig.tuning_ranges()
    except RelayError as exc:
        print(f"hamsrv-relay: rig ranges unknown ({exc}); allowing {MIN_HZ / 1e3:g} kHz-{MAX_HZ / 1e9:g} GHz",
              file=sys.stderr)
        return ((MIN_HZ, MAX_HZ),)
    clipped = tuple((max(low, MIN_HZ), min(high, MAX_HZ)) for low, high in ranges if low <= MAX_HZ and high >= MIN_HZ)
    return clipped or ((MIN_HZ, MAX_HZ),)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.origin:
        _parser().error("give at least one --origin (the hamsrv page's https://host)")
    if args.token is not None and len(args.token) < 8:
        _parser().error("--token must be at least 8 characters")
    if args.rate <= 0 or args.burst < 1 or args.timeout <= 0 or args.idle_timeout <= 0:
        _parser().error("--rate, --timeout and --idle-timeout must be > 0 and --burst >= 1")
    token = args.token if args.token is not None else secrets.token_urlsafe(18)
    rig = RigctldClient(args.rigctld[0], args.rigctld[1], timeout=args.timeout)
    policy = Policy(frozenset(args.origin), token, _ranges_of(rig))
    bucket = TokenBucket(args.rate, args.burst, time.monotonic())
    try:
        server = _RelayServer(args.listen, policy, bucket, rig, args.idle_timeout)
    except OSError as exc:
        print(f"hamsrv-relay: cannot listen on {args.listen[0]}:{args.listen[1]}: {exc}", file=sys.stderr)
        return 1
    host, port = str(server.server_address[0]), server.server_address[1]
    if not is_loopback_host(f"[{host}]" if ":" in host else host):
        print(
            f"hamsrv-relay: warning: {host} is not loopback; other machines can reach the relay",
            file=sys.stderr,
        )
    shown = f"[{host}]" if ":" in host else host
    print(f"hamsrv-relay listening on http://{shown}:{port} -> rigctld {rig.host}:{rig.port}", flush=True)
    if args.token is None:
        print(f"pairing token: {token}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
