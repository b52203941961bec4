"""What every HTTP module shares: the app state, JSON errors, argument parsing, authentication."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any

import trio
from quart import Response, current_app, jsonify, request

from hamsrv.config import Config
from hamsrv.cty import CtyTable
from hamsrv.db.database import Database
from hamsrv.firehose.hub import Hub
from hamsrv.identity.tokens import user_for_token
from hamsrv.ingest.jobs import JobRunner
from hamsrv.metrics import Registry
from hamsrv.model import Spot, bounded_int
from hamsrv.propagation import SolarReading

Handler = Callable[..., Awaitable[Any]]


async def _no_solar_data() -> SolarReading | None:
    return None


@dataclass
class AppState:
    """What the routes need from the running process."""

    db: Database
    hub: Hub
    metrics: Registry
    imports: JobRunner
    started: float = field(default_factory=time.monotonic)
    health_extras: dict[str, Callable[[], Any]] = field(default_factory=dict)
    max_upload_bytes: int = 512 << 20
    max_json_bytes: int = 1 << 20
    body_timeout: float = 60.0  # seconds a client may stall while sending a body
    spool_dir: Path | None = None  # where uploads wait for the database (None: the system's temp dir)
    web_dir: Path = Config.web_dir
    latest_solar: Callable[[], Awaitable[SolarReading | None]] = _no_solar_data  # the NOAA sync's newest
    cty: CtyTable | None = None  # DXCC prefixes, for answers about a callsign's country
    forward_spot: Callable[[Spot], Awaitable[bytes | None]] | None = None  # set in non-primary workers
    qsl: Any = None  # the QSL sync service (hamsrv.sync.qsl.QslService), None when not running

    async def publish_spot(self, spot: Spot) -> bytes | None:
        """Put a spot on the firehose (through the primary worker when there is one); its JSON, or None
        for a duplicate."""
        if self.forward_spot is not None:
            return await self.forward_spot(spot)
        entry = self.hub.publish(spot)
        return entry.json if entry is not None else None


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.field = status, field


def error(status: int, message: str, field: str | None = None, **extra: Any) -> Response:
    """The JSON error every route answers with: `{"error": ..., "field": ...}` plus any `extra` keys."""
    body: dict[str, Any] = {"error": message, **extra}
    if field:
        body["field"] = field
    response = jsonify(body)
    response.status_code = status
    return response


def reject_unknown_params(allowed: set[str]) -> None:
    """400 naming the first query parameter a route does not know (a typo must not be ignored)."""
    for name in request.args:
        if name not in allowed:
            raise ApiError(400, f"unknown query parameter {name!r} (known: {', '.join(sorted(allowed))})", name)


def parse_time(name: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{name} must be an ISO 8601 date or time", name) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_int(name: str, text: str | None, default: int, lo: int, hi: int) -> int:
    if text is None:
        return default
    value = bounded_int(text, hi)
    if value is None or value < lo:
        raise ApiError(400, f"{name} must be a whole number from {lo} to {hi}", name)
    return value


JSON_ON_LOOP_BYTES = 64 * 1024  # bodies larger than this are parsed in a worker thread


async def read_body(limit: int, timeout: float) -> bytes:
    """The whole request body, refused with 413 past `limit` bytes and 408 when the client stalls
    for `timeout` seconds between two pieces."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"the request body is larger than {limit} bytes")
    data = bytearray()
    async for chunk in body_chunks(timeout):
        data += chunk
        if len(data) > limit:
            raise ApiError(413, f"the request body is larger than {limit} bytes")
    return bytes(data)


async def body_chunks(timeout: float) -> AsyncIterator[bytes]:
    """The request body as it arrives; 408 when the client sends nothing for `timeout` seconds."""
    chunks = request.body.__aiter__()
    while True:
        with trio.move_on_after(timeout) as waited:
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
        if waited.cancelled_caught:
            raise ApiError(408, f"the client sent no body data for {timeout:g} s")
        yield chunk


async def json_body() -> dict[str, Any]:
    """The body as a JSON object, at most `max_json_bytes`; big ones are parsed off the event loop."""
    state: AppState = current_app.extensions["hamsrv"]
    data = await read_body(state.max_json_bytes, state.body_timeout)
    try:
        if len(data) > JSON_ON_LOOP_BYTES:
            body = await trio.to_thread.run_sync(json.loads, data)
        else:
            body = json.loads(data)
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body


def bearer_token(headers: Any) -> str:
    """The token of an `Authorization: Bearer ...` header, or "" when there is none."""
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def authenticated(handler: Handler) -> Handler:
    """Route decorator: the caller's user row becomes the handler's first argument (401 without a token)."""
    @wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        state: AppState = current_app.extensions["hamsrv"]
        token = bearer_token(request.headers)
        user = await user_for_token(state.db, token) if token else None
        if user is None:
            response = error(401, "a valid API token is required (Authorization: Bearer ...)")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        return await handler(user, *args, **kwargs)
    return wrapper
