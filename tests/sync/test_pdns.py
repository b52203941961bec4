"""Member DNS records: validation (pure, with hypothesis), then the API and the reconcile against a real
pdns_server, checked with real DNS queries (dig)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from hamsrv.db.database import Database
from hamsrv.errors import InputError
from hamsrv.sync import pdns
from hamsrv.sync.pdns import MemberDns, Record, check_conflicts, quote_txt, validate
from hamsrv.sync.scheduler import PgStateStore, Scheduler
from tests.api import Api, running_api
from tests.sync.conftest import ZONE
from tests.sync.powerdns import API_KEY, PowerDns

LABEL = "w1aw.hams.example."


# ---- validation

@pytest.mark.parametrize(("body", "expected"), [
    ({"type": "A", "content": "198.51.100.7"}, Record(LABEL, "A", "198.51.100.7", 3600)),
    ({"name": "@", "type": "a", "content": " 198.51.100.7 ", "ttl": 60}, Record(LABEL, "A", "198.51.100.7", 60)),
    ({"name": "WWW", "type": "AAAA", "content": "2001:DB8:0:0::1"}, Record("www." + LABEL, "AAAA", "2001:db8::1", 3600)),
    ({"name": "shack.w1aw.hams.example.", "type": "CNAME", "content": "Home.Example.org"},
     Record("shack." + LABEL, "CNAME", "home.example.org.", 3600)),
    ({"name": "_acme-challenge", "type": "TXT", "content": 'grid=FN31pr "qth"'},
     Record("_acme-challenge." + LABEL, "TXT", '"grid=FN31pr \\"qth\\""', 3600)),
    ({"type": "TXT", "content": '"v=spf1 -all" "second"'}, Record(LABEL, "TXT", '"v=spf1 -all" "second"', 3600)),
    ({"type": "MX", "content": "10 mail.example.org"}, Record(LABEL, "MX", "10 mail.example.org.", 3600)),
    ({"type": "CAA", "content": '0 ISSUE "letsencrypt.org"'}, Record(LABEL, "CAA", '0 issue "letsencrypt.org"', 3600)),
])
def test_valid_records(body, expected):
    assert validate(body, LABEL) == expected


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"name": "www.k1abc.hams.example.", "type": "A", "content": "1.2.3.4"}, "name", "outside your own name"),
    ({"name": "hams.example.", "type": "A", "content": "1.2.3.4"}, "name", "outside"),
    ({"name": "evilw1aw.hams.example.", "type": "A", "content": "1.2.3.4"}, "name", "outside"),
    ({"name": "a..b", "type": "A", "content": "1.2.3.4"}, "name", "not a valid DNS name"),
    ({"name": "-x", "type": "A", "content": "1.2.3.4"}, "name", "not a valid DNS name"),
    ({"name": "x" * 64, "type": "A", "content": "1.2.3.4"}, "name", "not a valid DNS name"),
    ({"name": 5, "type": "A", "content": "1.2.3.4"}, "name", "must be text"),
    ({"type": "NS", "content": "ns.example."}, "type", "A, AAAA, CNAME, TXT, MX, CAA"),
    ({"type": "A", "content": "300.1.1.1"}, "content", "not an IPv4 address"),
    ({"type": "AAAA", "content": "1.2.3.4"}, "content", "not an IPv6 address"),
    ({"type": "A"}, "content", "content is required"),
    ({"type": "CNAME", "content": "bad host!"}, "content", "not a host name"),
    ({"type": "TXT", "content": '"unterminated'}, "content", "quoted strings"),
    ({"type": "TXT", "content": '"' + "x" * 300 + '"'}, "content", "at most 255 bytes"),
    ({"type": "TXT", "content": "bell\x07"}, "content", "control characters"),
    ({"type": "MX", "content": "mail.example.org"}, "content", "PRIORITY HOST"),
    ({"type": "CAA", "content": "0 issue letsencrypt.org"}, "content", "FLAGS TAG"),
    ({"type": "CAA", "content": '0 tbs "x"'}, "content", "FLAGS TAG"),
    ({"type": "A", "content": "1.2.3.4", "ttl": 59}, "ttl", "from 60 to 86400"),
    ({"type": "A", "content": "1.2.3.4", "ttl": 86401}, "ttl", "from 60 to 86400"),
    ({"type": "A", "content": "1.2.3.4", "ttl": "3600"}, "ttl", "whole number"),
    ({"type": "A", "content": "1.2.3.4", "ttl": True}, "ttl", "whole number"),
    ({"type": "A", "content": "1.2.3.4", "priority": 1}, "priority", "unknown field"),
])
def test_invalid_records_name_the_field(body, field, words):
    with pytest.raises(InputError, match=re.escape(words)) as caught:
        validate(body, LABEL)
    assert caught.value.field == field


def test_conflicts():
    a = Record("www." + LABEL, "A", "1.2.3.4", 3600)
    with pytest.raises(InputError, match="already has"):
        check_conflicts(a, [a])
    with pytest.raises(InputError, match="CNAME must be the only record"):
        check_conflicts(Record("www." + LABEL, "CNAME", "x.example.", 60), [a])
    with pytest.raises(InputError, match="has a CNAME"):
        check_conflicts(a, [Record("www." + LABEL, "CNAME", "x.example.", 60)])
    check_conflicts(a, [Record("other." + LABEL, "CNAME", "x.example.", 60)])


def unquote_txt(content: str) -> str:
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', content)
    return b"".join(re.sub(r"\\(.)", r"\1", p).encode() for p in parts).decode()


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_characters="\x7f"),
               max_size=700))
def test_txt_quoting_round_trips(text):
    quoted = quote_txt(text)
    assert unquote_txt(quoted) == text or "\ufffd" in unquote_txt(quoted)  # a split inside a character
    assert all(len(p.encode()) <= 255 + 20 for p in re.findall(r'"((?:[^"\\]|\\.)*)"', quoted))


@given(st.text(max_size=80))
def test_any_name_stays_inside_the_label_or_is_refused(name):
    try:
        record = validate({"name": name, "type": "A", "content": "192.0.2.1"}, LABEL)
    except InputError as exc:
        assert exc.field == "name"
        return
    assert record.name == LABEL or record.name.endswith("." + LABEL)


@given(st.dictionaries(st.sampled_from(["name", "type", "content", "ttl"]),
                       st.none() | st.integers() | st.text(max_size=40), max_size=4))
def test_any_body_is_a_record_or_an_input_error(body):
    try:
        validate(body, LABEL)
    except InputError as exc:
        assert exc.field in ("name", "type", "content", "ttl")


# ---- against a real pdns_server

@pytest.fixture
def member(powerdns: PowerDns) -> MemberDns:
    return MemberDns(ZONE, powerdns.api_url, API_KEY, "localhost", quota=5)


@pytest.fixture
async def dns_api(db: Database, nursery: trio.Nursery, member: MemberDns) -> AsyncIterator[Api]:
    async with running_api(db, nursery, member_dns=member) as served:
        yield served


async def test_records_reach_dns_at_once(dns_api: Api, powerdns: PowerDns):
    async with dns_api.client(dns_api.token) as w1aw:
        created = await w1aw.post("/api/dns/records", json={"name": "www", "type": "A", "content": "198.51.100.7",
                                                            "ttl": 120})
        assert created.status_code == 201, created.text
        assert created.json()["name"] == "www.w1aw.hams.example." and created.json()["published"] is True
        assert await powerdns.dig("www.w1aw.hams.example.", "A") == ["198.51.100.7"]

        txt = await w1aw.post("/api/dns/records", json={"name": "@", "type": "TXT", "content": "grid=FN31pr"})
        assert txt.status_code == 201
        assert await powerdns.dig("w1aw.hams.example.", "TXT") == ['"grid=FN31pr"']

        second = await w1aw.post("/api/dns/records", json={"name": "www", "type": "A", "content": "198.51.100.8"})
        assert second.status_code == 201
        assert await powerdns.dig("www.w1aw.hams.example.", "A") == ["198.51.100.7", "198.51.100.8"]

        record_id = created.json()["id"]
        changed = await w1aw.patch(f"/api/dns/records/{record_id}", json={"content": "203.0.113.9"})
        assert changed.status_code == 200 and changed.json()["content"] == "203.0.113.9"
        assert await powerdns.dig("www.w1aw.hams.example.", "A") == ["198.51.100.8", "203.0.113.9"]

        moved = await w1aw.patch(f"/api/dns/records/{record_id}", json={"name": "shack", "type": "AAAA",
                                                                        "content": "2001:db8::7"})
        assert moved.status_code == 200
        assert await powerdns.dig("www.w1aw.hams.example.", "A") == ["198.51.100.8"]
        assert await powerdns.dig("shack.w1aw.hams.example.", "AAAA") == ["2001:db8::7"]

        listed = (await w1aw.get("/api/dns/records")).json()
        assert listed["your_name"] == "w1aw.hams.example." and len(listed["records"]) == 3

        assert (await w1aw.delete(f"/api/dns/records/{record_id}")).status_code == 204
        assert await powerdns.dig("shack.w1aw.hams.example.", "AAAA") == []


async def test_owner_scope_quota_and_trust(dns_api: Api, db: Database, powerdns: PowerDns):
    async with dns_api.client(dns_api.token) as w1aw, dns_api.client(dns_api.other_token) as k1abc, \
            dns_api.client() as anonymous:
        mine = (await w1aw.post("/api/dns/records", json={"type": "A", "content": "192.0.2.1"})).json()
        assert (await anonymous.get("/api/dns/records")).status_code == 401
        theirs = await k1abc.patch(f"/api/dns/records/{mine['id']}", json={"content": "192.0.2.66"})
        assert theirs.status_code == 404
        assert (await k1abc.delete(f"/api/dns/records/{mine['id']}")).status_code == 404
        outside = await k1abc.post("/api/dns/records", json={"name": "www.w1aw.hams.example.", "type": "A",
                                                             "content": "192.0.2.66"})
        assert outside.status_code == 400 and outside.json()["field"] == "name"
        assert (await k1abc.get("/api/dns/records")).json()["records"] == []
        assert await powerdns.dig("w1aw.hams.example.", "A") == ["192.0.2.1"]

        for i in range(2, 6):
            assert (await w1aw.post("/api/dns/records", json={"type": "A", "content": f"192.0.2.{i}"})).status_code == 201
        full = await w1aw.post("/api/dns/records", json={"type": "A", "content": "192.0.2.99"})
        assert full.status_code == 409 and "(5)" in full.json()["error"]
        twice = await k1abc.post("/api/dns/records", json={"type": "A", "content": "192.0.2.7"})
        again = await k1abc.post("/api/dns/records", json={"type": "A", "content": "192.0.2.7"})
        assert twice.status_code == 201 and again.status_code == 400 and "already has" in again.json()["error"]

        await db.execute("UPDATE users SET trust_level = 1 WHERE callsign = 'K1ABC'")  # e.g. a QRZ sign-in
        refused = await k1abc.post("/api/dns/records", json={"type": "A", "content": "192.0.2.8"})
        assert refused.status_code == 403 and "'medium'" in refused.json()["error"]


async def test_reconcile_repairs_drift(db: Database, member: MemberDns, powerdns: PowerDns, dns_api: Api):
    async with dns_api.client(dns_api.token) as w1aw:
        await w1aw.post("/api/dns/records", json={"name": "www", "type": "A", "content": "198.51.100.7"})
        await w1aw.post("/api/dns/records", json={"type": "MX", "content": "10 mail.example.org"})
    # drift: a record changed by hand, a stray one added by hand, one the database has but DNS lost
    await powerdns.patch(ZONE, [
        {"name": "www.w1aw.hams.example.", "type": "A", "ttl": 60, "changetype": "REPLACE",
         "records": [{"content": "6.6.6.6", "disabled": False}]},
        {"name": "stray.k1abc.hams.example.", "type": "TXT", "ttl": 60, "changetype": "REPLACE",
         "records": [{"content": '"hand made"', "disabled": False}]},
        {"name": "w1aw.hams.example.", "type": "MX", "changetype": "DELETE"},
        {"name": "ns1.hams.example.", "type": "A", "ttl": 60, "changetype": "REPLACE",  # not a member name
         "records": [{"content": "192.0.2.53", "disabled": False}]}])
    state = await Scheduler(PgStateStore(db)).run_once(pdns.make_job_for(db, member))
    assert state.status == "ok", state.error
    assert state.summary == "2 rrsets in sync; 3 repaired"
    assert await powerdns.dig("www.w1aw.hams.example.", "A") == ["198.51.100.7"]
    assert await powerdns.dig("w1aw.hams.example.", "MX") == ["10 mail.example.org."]
    assert await powerdns.dig("stray.k1abc.hams.example.", "TXT") == []
    assert await powerdns.dig("ns1.hams.example.", "A") == ["192.0.2.53"]  # left alone
    again = await Scheduler(PgStateStore(db)).run_once(pdns.make_job_for(db, member))
    assert again.summary == "2 rrsets in sync; 0 repaired"


@pytest.mark.parametrize(("change", "expected"), [
    ({"key": "wrong"}, "PowerDNS answered 401 for zone hams.example.: Unauthorized"),
    ({"zone": "nothere.example."}, "PowerDNS answered 404 for zone nothere.example."),
    ({"server": "elsewhere"}, "PowerDNS answered 404"),
])
async def test_powerdns_errors_are_sync_errors(db: Database, member: MemberDns, change, expected):
    state = await Scheduler(PgStateStore(db)).run_once(pdns.make_job_for(db, replace(member, **change)))
    assert state.status == "error" and state.error is not None
    assert state.error.startswith(expected), state.error


async def test_unreachable_powerdns_keeps_the_change_and_shows_the_error(db: Database, nursery: trio.Nursery,
                                                                         member: MemberDns, powerdns: PowerDns):
    powerdns.stop()
    async with running_api(db, nursery, member_dns=member) as served, served.client(served.token) as w1aw:
        created = await w1aw.post("/api/dns/records", json={"type": "A", "content": "192.0.2.1"})
        assert created.status_code == 202
        assert created.json()["published"] is False
        assert "cannot reach PowerDNS at 127.0.0.1" in created.json()["error"]
        syncs = {s["name"]: s for s in (await w1aw.get("/api/sync")).json()["syncs"]}
        assert syncs["pdns"]["status"] == "error" and "cannot reach PowerDNS" in syncs["pdns"]["error"]
        listed = (await w1aw.get("/api/dns/records")).json()["records"]
        assert [r["content"] for r in listed] == ["192.0.2.1"]  # stored: the reconcile publishes it later


async def test_a_change_powerdns_refuses_is_undone(dns_api: Api, powerdns: PowerDns):
    # a CNAME put there by hand: PowerDNS refuses an A beside it with 422; our API passes it on
    await powerdns.patch(ZONE, [{"name": "www.w1aw.hams.example.", "type": "CNAME", "ttl": 60,
                                 "changetype": "REPLACE", "records": [{"content": "x.example.", "disabled": False}]}])
    async with dns_api.client(dns_api.token) as w1aw:
        refused = await w1aw.post("/api/dns/records", json={"name": "www", "type": "A", "content": "192.0.2.1"})
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"].startswith("PowerDNS answered 422")
        assert (await w1aw.get("/api/dns/records")).json()["records"] == []
