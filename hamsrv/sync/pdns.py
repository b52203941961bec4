"""Member DNS records in PowerDNS (the old pdns_sync): each verified user owns the names at and under
their own label of the member zone (K1ABC owns k1abc.hams.example. and www.k1abc.hams.example.).

The database is the truth. Each change through the API PATCHes the touched rrset in PowerDNS at once;
the `pdns` sync reconciles the whole member namespace at start and hourly, so drift (a record changed
by hand, a change PowerDNS missed while it was down) is repaired. PowerDNS errors (401 bad key, 404 no
such zone or server, 409, 422 refused data, unreachable) are SyncErrors carrying PowerDNS's own message.

Validation (`validate`) is pure: names, types A AAAA CNAME TXT MX CAA, TXT quoting, TTL bounds.
FACTS 8 has the API facts this module relies on.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from hamsrv.config import Config
from hamsrv.db import accounts, dns_records
from hamsrv.db.database import Database, Row
from hamsrv.errors import InputError
from hamsrv.sync import fetch
from hamsrv.sync.scheduler import Job, JobState, PgStateStore, Progress, SyncError

TYPES = ("A", "AAAA", "CNAME", "TXT", "MX", "CAA")
TTL_MIN, TTL_MAX, TTL_DEFAULT = 60, 86400, 3600
MIN_TRUST = "medium"  # who may own records: admin-created users, FCC e-mail code, LoTW certificate (README)
TXT_MAX = 2048  # characters of one TXT record (split into 255-byte strings)
CAA_TAGS = ("issue", "issuewild", "iodef")
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


@dataclass(frozen=True)
class Record:
    name: str  # absolute, lower case, trailing dot
    type: str
    content: str  # as PowerDNS stores it (TXT quoted, names absolute)
    ttl: int


def owner_label(callsign: str, zone: str) -> str:
    """k1abc.hams.example. for K1ABC ('/' is not allowed in a DNS label: K1ABC/P -> k1abc-p)."""
    return f"{callsign.lower().replace('/', '-')}.{zone}"


def normalize_zone(zone: str) -> str:
    zone = zone.strip().lower()
    return zone if zone.endswith(".") else zone + "."


def _hostname(text: str, field: str) -> str:
    """An absolute host name, lower case, with its trailing dot."""
    name = text.strip().lower()
    name = name if name.endswith(".") else name + "."
    labels = name[:-1].split(".")
    if len(name) > 254 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InputError(f"{text!r} is not a host name", field)
    return name


def _name(text: Any, label: str) -> str:
    """A record name inside the owner's label: '@' or '' is the label itself, 'www' is relative to it,
    and a name ending in '.' is absolute."""
    if not isinstance(text, str):
        raise InputError("name must be text: '@', a name relative to your label, or an absolute name", "name")
    text = text.strip().lower()
    if text in ("", "@"):
        return label
    name = text if text.endswith(".") else f"{text}.{label}"
    if name != label and not name.endswith("." + label):
        raise InputError(f"{text!r} is outside your own name {label}", "name")
    labels = name[:-1].split(".")
    if len(name) > 254 or not all(_LABEL.fullmatch(x) for x in labels):
        raise InputError(f"{text!r} is not a valid DNS name (letters, digits, '-' and '_', labels up to 63)",
                         "name")
    return name


def quote_txt(text: str) -> str:
    """Plain text to TXT record content: quoted, backslash and quote escaped, split every 255 bytes."""
    data = text.encode()
    if len(text) > TXT_MAX:
        raise InputError(f"TXT content is longer than {TXT_MAX} characters", "content")
    if any(b < 32 or b == 127 for b in data):
        raise InputError("TXT content must not hold control characters", "content")
    parts = [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]
    return " ".join('"' + p.decode("utf-8", "replace").replace("\\", "\\\\").replace('"', '\\"') + '"'
                    for p in parts)


_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"(?:\s+"(?:[^"\\]|\\.)*")*')


def _txt(content: str) -> str:
    """Content already in quotes ("a" "b") is checked and kept; anything else is quoted for you."""
    stripped = content.strip()
    if stripped.startswith('"'):
        if not _QUOTED.fullmatch(stripped):
            raise InputError('TXT content that starts with " must be quoted strings: "text" "more text"',
                             "content")
        if any(len(part.encode()) > 257 for part in re.findall(r'"(?:[^"\\]|\\.)*"', stripped)):
            raise InputError("each quoted TXT string holds at most 255 bytes", "content")
        return stripped
    return quote_txt(content)


def _content(rtype: str, content: Any) -> str:
    if not isinstance(content, str) or not content.strip():
        raise InputError(f"content is required for a {rtype} record", "content")
    text = content.strip()
    try:
        if rtype == "A":
            return str(ipaddress.IPv4Address(text))
        if rtype == "AAAA":
            return ipaddress.IPv6Address(text).compressed
    except ValueError:
        raise InputError(f"{text!r} is not an IPv{'4' if rtype == 'A' else '6'} address", "content") from None
    if rtype == "CNAME":
        return _hostname(text, "content")
    if rtype == "TXT":
        return _txt(content)
    if rtype == "MX":
        parts = text.split()
        if len(parts) != 2 or not parts[0].isdecimal() or int(parts[0]) > 65535:
            raise InputError("MX content is 'PRIORITY HOST', e.g. '10 mail.example.org.'", "content")
        return f"{int(parts[0])} {_hostname(parts[1], 'content')}"
    # CAA: flags tag "value"
    m = re.fullmatch(r'(\d{1,3})\s+([a-z]+)\s+"([^"\\]*)"', text, re.IGNORECASE)
    if not m or int(m.group(1)) > 255 or m.group(2).lower() not in CAA_TAGS:
        raise InputError('CAA content is \'FLAGS TAG "VALUE"\', e.g. \'0 issue "letsencrypt.org"\' '
                         f"(tags: {', '.join(CAA_TAGS)})", "content")
    return f'{int(m.group(1))} {m.group(2).lower()} "{m.group(3)}"'


def validate(body: dict[str, Any], label: str, base: Record | None = None) -> Record:
    """A record from the API's JSON (`base`: the record a PATCH changes). Raises InputError naming the field."""
    unknown = set(body) - {"name", "type", "content", "ttl"}
    if unknown:
        raise InputError(f"unknown field {sorted(unknown)[0]!r} (fields: name, type, content, ttl)",
                         sorted(unknown)[0])
    rtype = body.get("type", base.type if base else None)
    if not isinstance(rtype, str) or rtype.upper() not in TYPES:
        raise InputError(f"type must be one of {', '.join(TYPES)}", "type")
    rtype = rtype.upper()
    name = _name(body["name"], label) if "name" in body else base.name if base else _name("", label)
    if "content" in body or base is None or rtype != base.type:
        content = _content(rtype, body.get("content", base.content if base else None))
    else:
        content = base.content
    ttl = body.get("ttl", base.ttl if base else TTL_DEFAULT)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not TTL_MIN <= ttl <= TTL_MAX:
        raise InputError(f"ttl must be a whole number of seconds from {TTL_MIN} to {TTL_MAX}", "ttl")
    return Record(name, rtype, content, ttl)


def check_conflicts(record: Record, others: list[Record]) -> None:
    """CNAME stands alone at its name (RFC 1034 3.6.2); the same record twice is refused."""
    same_name = [o for o in others if o.name == record.name]
    if any(o.type == record.type and o.content == record.content for o in same_name):
        raise InputError(f"{record.name} already has this {record.type} record", "content")
    if record.type == "CNAME" and same_name:
        raise InputError(f"{record.name} has other records: a CNAME must be the only record at its name", "type")
    if record.type != "CNAME" and any(o.type == "CNAME" for o in same_name):
        raise InputError(f"{record.name} has a CNAME: no other record may sit beside it", "type")


def rrset(name: str, rtype: str, records: list[Record]) -> dict[str, Any]:
    """The PATCH entry for one rrset: REPLACE with `records`, or DELETE when there are none.
    PowerDNS keeps one TTL per rrset: the smallest asked for."""
    if not records:
        return {"name": name, "type": rtype, "changetype": "DELETE"}
    return {"name": name, "type": rtype, "ttl": min(r.ttl for r in records), "changetype": "REPLACE",
            "records": [{"content": r.content, "disabled": False} for r in sorted(records, key=lambda r: r.content)]}


# ---- the PowerDNS HTTP API

@dataclass(frozen=True)
class MemberDns:
    """Settings of the member zone and its PowerDNS (None from `member_dns` when not configured)."""

    zone: str
    url: str
    key: str
    server: str
    quota: int

    def zone_url(self) -> str:
        return f"{self.url.rstrip('/')}/api/v1/servers/{quote(self.server, safe='')}/zones/{quote(self.zone, safe='')}"

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=httpx.Timeout(20.0, connect=5.0),
                                 headers={"X-API-Key": self.key, "User-Agent": fetch.USER_AGENT})


def member_dns(config: Config) -> MemberDns | None:
    if not config.dns_zone or not config.pdns_url:
        return None
    return MemberDns(normalize_zone(config.dns_zone), config.pdns_url, config.pdns_key or "", config.pdns_server,
                     config.dns_quota)


async def _call(dns: MemberDns, method: str, body: Any = None) -> Any:
    try:
        async with dns.client() as http:
            response = await http.request(method, dns.zone_url(), json=body)
    except httpx.TimeoutException:
        raise SyncError(f"PowerDNS at {urlsplit(dns.url).netloc} did not answer in time") from None
    except httpx.HTTPError as exc:
        raise SyncError(f"cannot reach PowerDNS at {urlsplit(dns.url).netloc}: {exc}") from None
    if response.status_code >= 300:
        try:
            detail = response.json().get("error") or response.text
        except ValueError:
            detail = response.text.strip()[:200] or response.reason_phrase
        raise SyncError(f"PowerDNS answered {response.status_code} for zone {dns.zone}: {detail}")
    return response.json() if response.content else None


async def patch(dns: MemberDns, rrsets: list[dict[str, Any]]) -> None:
    if rrsets:
        await _call(dns, "PATCH", {"rrsets": rrsets})


async def zone_rrsets(dns: MemberDns) -> list[dict[str, Any]]:
    body = await _call(dns, "GET")
    return list(body.get("rrsets", [])) if isinstance(body, dict) else []


# ---- the database side

async def zone_id(db: Database, dns: MemberDns) -> int:
    return await dns_records.zone_id(db, dns.zone)


def as_record(row: Row) -> Record:
    return Record(row["name"], row["type"], row["content"], row["ttl"])


async def rrset_records(db: Database, zid: int, name: str, rtype: str) -> list[Record]:
    rows = await dns_records.published(db, zid, name, rtype)
    return [as_record(r) for r in rows]


async def publish(db: Database, dns: MemberDns, touched: set[tuple[str, str]]) -> str | None:
    """PATCH the touched rrsets from the database at once. None when PowerDNS took them; else the error,
    also recorded as the pdns sync's error (the hourly reconcile retries)."""
    zid = await zone_id(db, dns)
    rrsets = [rrset(name, rtype, await rrset_records(db, zid, name, rtype)) for name, rtype in sorted(touched)]
    try:
        await patch(dns, rrsets)
    except SyncError as exc:
        await record_error(db, str(exc))
        return str(exc)
    return None


async def record_error(db: Database, message: str) -> None:
    """Show a failed change at GET /api/sync as the pdns sync's error, as a failed run would."""
    from datetime import UTC, datetime

    store = PgStateStore(db)
    state = await store.load("pdns") or JobState("pdns")
    state.status, state.error, state.failures = "error", message, state.failures + 1
    state.last_error_at = datetime.now(UTC)
    await store.save(state)


# ---- reconcile (the sync job)

async def reconcile(db: Database, dns: MemberDns, progress: Progress) -> str:
    """Make PowerDNS hold exactly the database's records in the member namespace (the labels of users)."""
    zid = await zone_id(db, dns)
    rows = await dns_records.published(db, zid)
    wanted: dict[tuple[str, str], list[Record]] = {}
    for row in rows:
        wanted.setdefault((row["name"], row["type"]), []).append(as_record(row))
    labels = {owner_label(call, dns.zone) for call in await accounts.callsigns(db)}
    live = await zone_rrsets(dns)
    progress(f"PowerDNS holds {len(live)} rrsets in {dns.zone}; the database {len(wanted)}")
    have: dict[tuple[str, str], dict[str, Any]] = {}
    for rr in live:
        name = str(rr.get("name", "")).lower()
        member = any(name == label or name.endswith("." + label) for label in labels)
        if member and rr.get("type") in TYPES:
            have[(name, str(rr["type"]))] = rr
    changes = []
    for key, records in wanted.items():
        desired = rrset(*key, records)
        current = have.get(key)
        if current is None or _differs(current, desired):
            changes.append(desired)
    for key in have.keys() - wanted.keys():
        changes.append(rrset(*key, []))
    await patch(dns, changes)
    for change in changes:
        progress(f"repaired {change['name']} {change['type']} ({change['changetype']})")
    return f"{len(wanted)} rrsets in sync; {len(changes)} repaired"


def _differs(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    contents = sorted(r.get("content", "") for r in current.get("records", []) if not r.get("disabled"))
    return contents != [r["content"] for r in desired["records"]] or current.get("ttl") != desired["ttl"]


def make_job_for(db: Database, dns: MemberDns) -> Job:
    return Job("pdns", partial(reconcile, db, dns), interval=3600, timeout=300, retry_min=60, retry_max=1800,
               at_start=True)


def make_job(config: Config, db: Database) -> Job | None:
    dns = member_dns(config)
    return None if dns is None else make_job_for(db, dns)
