"""The user bus's wire format, sans-I/O: what a page may send, what it is sent, and the NOTIFY envelopes.

Page -> server (one JSON object per text frame, at most MAX_FRAME bytes):
    {"type": "announce", "text": "QRV 6m FN31", "full": false, "id": "a1"}
    {"type": "talk", "to": "G4ABC", "text": "tnx QSO", "id": "t1"}
`id` (optional, up to 40 characters) comes back in the answer: {"type": "sent", "id": ...} or
{"type": "error", "error": "...", "id": ...}. Server -> page: "hello", "import", "qsl", "sync_failed",
"announce", "talk", "sent", "error" (README "User bus").

Between processes every event travels as a NOTIFY payload on CHANNEL: an envelope naming who gets the
message (a user id, a callsign, one connection, or every page of a node) around the message itself.
A page's announcement or talk goes on POST_CHANNEL to the process that owns the node's cluster board,
which applies the cluster port's rules (service.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hamsrv.firehose.bulletins import Posted, Talk, firehose_message
from hamsrv.firehose.commands import MAX_TEXT
from hamsrv.firehose.lines import clean_text
from hamsrv.identity.ratelimit import Buckets, Rate
from hamsrv.model import normalize_call

CHANNEL = "ham_user_bus"  # envelopes for pages
POST_CHANNEL = "ham_bus_post"  # pages' announcements and talks, for the board's owner
MAX_FRAME = 2048  # bytes of one message from a page
MAX_REF = 40  # characters of a message's `id`
FRAME_RATE = Rate(per_second=1.0, burst=10.0)  # messages a page may send: 10 at once, then 1 a second

# Close codes (RFC 6455 7.4: 1008 policy violation, 1009 too big; 4000-4999 are ours)
CLOSE_TOO_FAST = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TOO_SLOW = 4000  # the page did not read its messages: its queue overflowed


# ------------------------------------------------------------------------------------ from the page
@dataclass(frozen=True)
class PostCommand:
    """An announcement (`to` LOCAL or ALL) or a talk (`to` a callsign) a page asks to send."""

    kind: str  # "announce" or "talk"
    to: str
    text: str
    ref: str | None = None


@dataclass(frozen=True)
class Refusal:
    """Answer the page with an error; the connection stays."""

    error: str
    ref: str | None = None


@dataclass(frozen=True)
class Close:
    """End the connection with this code."""

    code: int
    reason: str


def parse_command(data: str | bytes) -> PostCommand | Refusal:
    """One message from a page, read as the cluster port reads `announce` and `talk`: control
    characters are dropped (as a terminal line), the text must be 1 to MAX_TEXT characters."""
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        return Refusal("a message must be a JSON object")
    if not isinstance(body, dict):
        return Refusal("a message must be a JSON object")
    ref = body.get("id")
    if ref is not None and not (isinstance(ref, str) and 0 < len(ref) <= MAX_REF and ref.isprintable()):
        return Refusal(f"id must be a string of 1 to {MAX_REF} printable characters")
    kind, text = body.get("type"), body.get("text")
    if kind not in ("announce", "talk"):
        return Refusal("type must be announce or talk", ref)
    if not isinstance(text, str):
        return Refusal("text must be a string", ref)
    text = clean_text(text.encode("utf-8", "replace")).strip()
    if not text:
        return Refusal("Need at least some text", ref)  # the cluster port's words (cmd/announce.pl e9)
    if len(text) > MAX_TEXT:
        return Refusal(f"text is too long: at most {MAX_TEXT} characters", ref)
    if kind == "announce":
        full = body.get("full", False)
        if not isinstance(full, bool):
            return Refusal("full must be true or false", ref)
        return PostCommand("announce", "ALL" if full else "LOCAL", text, ref)
    to = body.get("to")
    if not isinstance(to, str) or normalize_call(to.strip().split("-")[0]) is None:
        return Refusal(f"{str(to)[:20]!r} is not a callsign", ref)
    return PostCommand("talk", to.strip().upper(), text, ref)


class Inbound:
    """The page side of one connection: size and rate checked before anything is parsed."""

    def __init__(self, rate: Rate = FRAME_RATE):
        self._bucket = Buckets(rate, max_keys=1)

    def receive(self, data: str | bytes, now: float) -> PostCommand | Refusal | Close:
        size = len(data.encode("utf-8", "replace") if isinstance(data, str) else data)
        if size > MAX_FRAME:
            return Close(CLOSE_TOO_BIG, f"message larger than {MAX_FRAME} bytes")
        if self._bucket.take("", now) > 0:
            return Close(CLOSE_TOO_FAST, "too many messages")
        return parse_command(data)


# ------------------------------------------------------------------------------------ to the page
def hello(call: str, trust: str) -> dict[str, Any]:
    return {"type": "hello", "call": call, "trust": trust, "max_text": MAX_TEXT}


def import_event(event: dict[str, Any]) -> dict[str, Any]:
    """An import job's progress or result (the JobRunner's event, as /ws/imports sends it)."""
    return {**event, "type": "import"}


def qsl_event(service: str, new: int, matched: int, text: str) -> dict[str, Any]:
    return {"type": "qsl", "service": service, "new": new, "matched": matched, "text": text}


def sync_failed(service: str, job: str, error: str) -> dict[str, Any]:
    return {"type": "sync_failed", "service": service, "job": job, "error": error}


def answer(ref: str | None, error: str | None = None) -> dict[str, Any]:
    """The answer to a page's announcement or talk."""
    body: dict[str, Any] = {"type": "sent"} if error is None else {"type": "error", "error": error}
    if ref is not None:
        body["id"] = ref
    return body


def bulletin_message(posted: Posted) -> dict[str, Any] | None:
    """An announcement everyone may see (as on the firehose) or a talk; None for the rest."""
    item = posted.item
    if isinstance(item, Talk):
        return {"type": "talk", "from": item.sender, "to": item.to, "text": item.text,
                "time": posted.when.strftime("%Y-%m-%dT%H:%M:%SZ")}
    return firehose_message(posted)


# ------------------------------------------------------------------------------------ envelopes
@dataclass(frozen=True)
class Envelope:
    """Who a message is for: `user` (an id), `call` (its pages, on `node`), `conn` (one connection),
    or every page on `node`. `text` is the message's JSON, encoded once for all its pages."""

    text: str
    user: int | None = None
    call: str | None = None
    conn: str | None = None
    node: str | None = None


def for_user(user_id: int, message: dict[str, Any]) -> str:
    return json.dumps({"u": user_id, "m": message}, separators=(",", ":"))


def for_connection(conn: str, message: dict[str, Any]) -> str:
    return json.dumps({"k": conn, "m": message}, separators=(",", ":"))


def for_node(node: str, message: dict[str, Any], call: str | None = None) -> str:
    """Every page of `node`, or with `call` only that user's pages there (a talk)."""
    body: dict[str, Any] = {"n": node, "m": message}
    if call is not None:
        body["c"] = call
    return json.dumps(body, separators=(",", ":"))


def read_envelope(payload: str) -> Envelope | None:
    """None for a payload this version cannot place (not JSON, no message, no addressee)."""
    try:
        body = json.loads(payload)
        message = body["m"]
        user, call, conn, node = body.get("u"), body.get("c"), body.get("k"), body.get("n")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(message, dict) or not (isinstance(user, int) or isinstance(conn, str)
                                             or isinstance(node, str)):
        return None
    return Envelope(json.dumps(message, separators=(",", ":")), user if isinstance(user, int) else None,
                    call if isinstance(call, str) else None, conn if isinstance(conn, str) else None,
                    node if isinstance(node, str) else None)


@dataclass(frozen=True)
class PostRequest:
    """A page's announcement or talk on its way to the node's board owner."""

    node: str
    conn: str  # where the answer goes
    call: str
    command: PostCommand


def post_request(request: PostRequest) -> str:
    c = request.command
    return json.dumps({"n": request.node, "k": request.conn, "c": request.call, "kind": c.kind, "to": c.to,
                       "text": c.text, "id": c.ref}, separators=(",", ":"))


def read_post_request(payload: str) -> PostRequest | None:
    """Checked again on arrival: the text is what the page's worker accepted, but any database client
    can NOTIFY."""
    try:
        body = json.loads(payload)
        node, conn, call, kind, to = body["n"], body["k"], body["c"], body["kind"], body["to"]
    except (ValueError, KeyError, TypeError):
        return None
    if not all(isinstance(v, str) for v in (node, conn, call, to)):
        return None
    message = {"type": kind, "text": body.get("text"), "id": body.get("id")}
    if kind == "announce":
        message["full"] = to == "ALL"
    else:
        message["to"] = to
    command = parse_command(json.dumps(message))
    return PostRequest(node, conn, call, command) if isinstance(command, PostCommand) else None
