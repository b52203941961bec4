"""What every HTTP module shares: the app state, JSON errors, argument parsing, authentication."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio
from quart import Response, current_app, g, jsonify, make_response, request

from hamsrv.config import Config
from hamsrv.cty import CtyTable
from hamsrv.db.database import Database, Row
from hamsrv.firehose.hub import Hub
from hamsrv.identity import idempotency
from hamsrv.identity.policy import Policy
from hamsrv.identity.ratelimit import Buckets, retry_after
from hamsrv.identity.sessions import COOKIE, SESSION_PREFIX, TRUST_LEVELS, TRUST_NAMES, user_for_session
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
    identity: Policy = field(default_factory=Policy)  # sessions, sign-in and rate limits
    member_dns: Any = None  # hamsrv.sync.pdns.MemberDns when HAMSRV_DNS_ZONE and HAMSRV_PDNS_URL are set
    access_log: bool = False  # one line per request on the `hamsrv.access` logger
    auth_port: int = 0  # the certificate sign-in listener's port (0: off), for the page's link to it
    qsl: Any = None  # the QSL sync service (hamsrv.sync.qsl.QslService), None when not running
    bus: Any = None  # the user bus (hamsrv.bus.service.UserBus), None when not running

    async def publish_spot(self, spot: Spot) -> bytes | None:
        """Put a spot on the firehose (through the primary worker when there is one); its JSON, or None
        for a duplicate."""
        if self.forward_spot is not None:
            return await self.forward_spot(spot)
        entry = self.hub.publish(spot)
        return entry.json if entry is not None else None


def app_state() -> AppState:
    """The AppState of the app answering the current request (create_app puts it there)."""
    state: AppState = current_app.extensions["hamsrv"]
    return state


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None, retry_after: str | None = None):
        super().__init__(message)
        self.status, self.field, self.retry_after = status, field, retry_after


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
    data = g.pop("hamsrv_body", None)  # read already for an Idempotency-Key's fingerprint
    if data is None:
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


async def current_user() -> Row | None:
    """The caller's user row, from `Authorization: Bearer` (an API token or a session token) or else the
    session cookie; with `trust` (the credential's trust level), `session_id` (None for API tokens) and
    `via_cookie`. Identity headers such as X-Client-DN are never read: the mTLS listener is the only
    way a certificate signs anyone in. Looked up once per request."""
    if "hamsrv_user" in g:
        return g.hamsrv_user  # type: ignore[no-any-return]
    state: AppState = current_app.extensions["hamsrv"]
    token, via_cookie = bearer_token(request.headers), False
    if not token:
        token, via_cookie = request.cookies.get(COOKIE, ""), True
    user: Row | None = None
    if token.startswith(SESSION_PREFIX):
        user = await user_for_session(state.db, token)
    elif token and not via_cookie:
        user = await user_for_token(state.db, token)
        if user is not None:
            user.update(trust=user["trust_level"], session_id=None, method="token")
    if user is not None:
        user["via_cookie"] = via_cookie
    g.hamsrv_user = user
    return user


async def websocket_user(ws: Any) -> Row | None:
    """The user of a WebSocket: `?token=` or a bearer token (API or session), else the session cookie,
    which counts only when the browser's Origin is this site (no cross-site WebSocket hijacking)."""
    state: AppState = current_app.extensions["hamsrv"]
    token = ws.args.get("token") or bearer_token(ws.headers)
    if token.startswith(SESSION_PREFIX):
        return await user_for_session(state.db, token)
    if token:
        return await user_for_token(state.db, token)
    cookie, origin = ws.cookies.get(COOKIE, ""), urlsplit(ws.headers.get("Origin", ""))
    if cookie and origin.netloc.lower() == ws.host.lower() and origin.scheme in ("http", "https"):
        return await user_for_session(state.db, cookie)
    return None


def client_ip() -> str:
    return request.remote_addr or "?"


def same_origin() -> bool:
    """True when a browser says the request comes from this site's own pages. Browsers send Origin
    on every POST, PUT, PATCH and DELETE; without it the request is not trusted with a cookie."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return False
    parts = urlsplit(origin)
    return parts.scheme == request.scheme and parts.netloc.lower() == request.host.lower()


UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def rate_limited(buckets: Buckets, key: str, what: str) -> None:
    """429 with Retry-After when `key` has spent its bucket."""
    state: AppState = current_app.extensions["hamsrv"]
    wait = buckets.take(key, state.identity.clock())
    if wait > 0:
        raise ApiError(429, f"too many requests ({what}); try again in {retry_after(wait)} s",
                       retry_after=retry_after(wait))


def streams_body(handler: Handler) -> Handler:
    """Mark a POST route that streams its body itself. An Idempotency-Key's fingerprint here covers the
    method, path and query (a retry while the first request runs is a 409 at once); a retry after it
    ran is not replayed but runs the route again, which tells it by its body (imports: the job's upload
    SHA-256) and answers 422 for another body under the key."""
    handler.streams_body = True  # type: ignore[attr-defined]
    return handler


def authenticated(handler: Handler, min_trust: int = 1) -> Handler:
    """Route decorator: the caller's user row becomes the handler's first argument. 401 without a valid
    token or session, 403 for a cookie-authenticated write from another site or too little trust,
    429 past the user's rate; a POST with an Idempotency-Key is answered once (idempotency.py)."""
    @wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        state: AppState = current_app.extensions["hamsrv"]
        user = await current_user()
        if user is None:
            response = error(401, "sign in first, or send a valid API token (Authorization: Bearer ...)")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        if user["via_cookie"] and request.method in UNSAFE_METHODS and not same_origin():
            raise ApiError(403, "cross-site request refused: a write signed in by cookie must come from "
                                "this site's pages (Origin header)", "Origin")
        if user["trust"] < min_trust:
            raise ApiError(403, f"this needs trust {TRUST_NAMES[min_trust]!r}; this sign-in has "
                                f"{TRUST_NAMES[user['trust']]!r} (see README: Sign-in and trust)")
        rate_limited(state.identity.api_per_user, f"user:{user['id']}", "per user")
        if request.method == "POST" and "Idempotency-Key" in request.headers:
            return await idempotent(state, user, handler, args, kwargs)
        return await handler(user, *args, **kwargs)
    return wrapper


def requires_trust(name: str) -> Callable[[Handler], Handler]:
    """`@requires_trust("medium")`: `authenticated`, and the sign-in must be at least that trusted."""
    return lambda handler: authenticated(handler, TRUST_LEVELS[name])


MAX_IDEMPOTENCY_KEY = 200
MAX_REPLAY_BODY = 256 * 1024  # answers larger than this are not kept (a retry then gets 409)


def idempotency_key() -> str | None:
    """The request's Idempotency-Key, None without one; 400 when it is not 1 to 200 printable characters."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()):
        raise ApiError(400, f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters",
                       "Idempotency-Key")
    return key


def request_digest() -> Any:
    """SHA-256 of the request's method, path and query: an Idempotency-Key fingerprint adds the body."""
    return hashlib.sha256(f"{request.method} {request.path}?{request.query_string.decode()}\n".encode())


KEY_REUSED = "this Idempotency-Key was used for a different request (method, path, query or body); use a new key"


async def idempotent(state: AppState, user: Row, handler: Handler, args: Any, kwargs: Any) -> Response:
    """The first answer to this user's POST with this Idempotency-Key, recorded in PostgreSQL: a retry
    of the same request gets it again (`Idempotent-Replayed: true`), the same key with another request
    a 422, a retry while the first still runs a 409. Server errors are not kept, so a retry runs again."""
    key = idempotency_key()
    assert key is not None
    digest = request_digest()
    streams = getattr(handler, "streams_body", False)
    if not streams:
        g.hamsrv_body = await read_body(state.max_json_bytes, state.body_timeout)
        digest.update(g.hamsrv_body)
    stored = await idempotency.claim(state.db, user["id"], key, digest.digest())
    if stored is not None:
        if streams and stored["status"] is not None and stored["fingerprint"] == digest.digest():
            return await handler(user, *args, **kwargs)  # type: ignore[no-any-return]  # see streams_body
        return _replay(stored, digest.digest())
    try:
        response = await make_response(await handler(user, *args, **kwargs))
        assert isinstance(response, Response)
    except BaseException:
        with trio.CancelScope(shield=True):
            await idempotency.release(state.db, user["id"], key)
        raise
    body = await response.get_data(as_text=False)
    assert isinstance(body, bytes)
    if response.status_code >= 500 or len(body) > MAX_REPLAY_BODY:
        await idempotency.release(state.db, user["id"], key)
    else:
        await idempotency.record(state.db, user["id"], key, response.status_code, response.content_type,
                                 response.headers.get("Location"), body)
    return response


def _replay(stored: Row, fingerprint: bytes) -> Response:
    if stored["fingerprint"] != fingerprint:
        raise ApiError(422, KEY_REUSED, "Idempotency-Key")
    if stored["status"] is None:
        raise ApiError(409, "a request with this Idempotency-Key is still being processed; retry later",
                       "Idempotency-Key")
    response = Response(stored["body"], status=stored["status"], content_type=stored["content_type"])
    if stored["location"]:
        response.headers["Location"] = stored["location"]
    response.headers["Idempotent-Replayed"] = "true"
    return response
