"""`/websocket`, the user bus: one authenticated WebSocket per signed-in page (README "User bus").

Served by hypercorn and quart-trio like `/ws/imports` (a few messages a minute per page; the firehose
fast path is for spots). Authentication is the HTTP API's: a bearer or `?token=` (API or session token),
or the session cookie from this site's own pages. The service behind it is hamsrv/bus/service.py, the
messages hamsrv/bus/wire.py.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Any

import trio
from quart import Response, websocket
from quart_trio import QuartTrio

from hamsrv.bus import wire
from hamsrv.bus.service import BusConnection, BusFull, UserBus
from hamsrv.http.common import AppState, error, websocket_user
from hamsrv.identity.sessions import TRUST_LEVELS, TRUST_NAMES

# Announcements and talks go out to other people under the page's callsign: the call must be proven
# as well as for a cluster-port password (POST /api/cluster-password), more than a QRZ token shows.
POST_TRUST = "medium"
CLOSE_WAIT = 2.0  # seconds a close frame may take to go out


def register(app: QuartTrio, state: AppState) -> None:
    @app.websocket("/websocket")
    async def user_bus() -> Response | None:
        bus: UserBus | None = state.bus
        if bus is None:
            return error(503, "the user bus is not running on this server")
        user = await websocket_user(websocket)
        if user is None:  # refused before the upgrade, with the JSON body every refusal has
            response = error(401, "sign in, or send a valid token (?token= or Authorization: Bearer)")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        trust = user["trust"] if "trust" in user else user["trust_level"]  # session, else account (API token)
        assert isinstance(trust, int)
        if trust < TRUST_LEVELS["low"]:
            return error(403, f"the user bus needs trust 'low'; this sign-in has {TRUST_NAMES[trust]!r}")
        with ExitStack() as stack:
            try:
                conn = stack.enter_context(bus.connect(user["id"], user["callsign"]))
            except BusFull as exc:
                return error(429, f"{exc}; close another page first")
            await websocket.accept()
            await _serve(bus, conn, trust)
        return None


async def _serve(bus: UserBus, conn: BusConnection, trust: int) -> None:
    """Write queued messages, read the page's posts; end on a rule broken or a queue overflowed."""
    close: wire.Close | None = None
    await websocket.send(json.dumps(wire.hello(conn.call, TRUST_NAMES[trust])))

    async def write() -> None:
        async for text in conn.inbox:
            await websocket.send(text)

    async def read(done: trio.CancelScope) -> None:
        nonlocal close
        inbound = wire.Inbound()
        while True:
            result = inbound.receive(await websocket.receive(), trio.current_time())
            if isinstance(result, wire.Close):
                close = result
                done.cancel()
                return
            if isinstance(result, wire.Refusal):
                conn.push(_text(wire.answer(result.ref, result.error)))
            elif trust < TRUST_LEVELS[POST_TRUST]:
                conn.push(_text(wire.answer(result.ref, f"sending an {result.kind} needs trust {POST_TRUST!r}; "
                                                        f"this sign-in has {TRUST_NAMES[trust]!r}")))
            else:
                bus.post(conn, result)

    async def watch(done: trio.CancelScope) -> None:
        nonlocal close
        await conn.stalled.wait()
        close = wire.Close(wire.CLOSE_TOO_SLOW, f"the page fell {bus.queue} messages behind")
        done.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write)
        nursery.start_soon(read, nursery.cancel_scope)
        nursery.start_soon(watch, nursery.cancel_scope)
    if close is not None:
        with trio.move_on_after(CLOSE_WAIT):
            await websocket.close(close.code, close.reason)


def _text(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))
