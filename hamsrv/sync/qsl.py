"""The QSL sync service: per-user LoTW and eQSL downloads, matched to the log, with health in words.

Each user's sync with each service is a scheduler job (`lotw:W1AW`), so one user's wrong password or a
slow service only ever fails that job: the others run on their own schedule. A run downloads what is
new since the stored resume point, keeps every confirmation (matched or not), matches the unmatched ones
against the log, marks matched QSOs LOTW_QSL_RCVD/EQSL_QSL_RCVD = Y with the date, leaves a notice for
the user when something new arrived, and only then moves the resume point, all in one transaction.
The formats are read in lotw.py and eqsl.py, the matching rule lives in confirmations.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import trio

from hamsrv.bus import wire as bus_wire
from hamsrv.config import Config
from hamsrv.db import qsl as qsl_sql
from hamsrv.db import sync_state
from hamsrv.db.database import Database, Row, execute_on, json_value
from hamsrv.db.notify import NOTIFY_SQL, notify
from hamsrv.errors import DatabaseError
from hamsrv.identity.vault import Vault, VaultError
from hamsrv.ingest.adif import Record
from hamsrv.ingest.normalize import Reject
from hamsrv.sync import eqsl, lotw
from hamsrv.sync.confirmations import Confirmation, LoggedQso, QslError, confirmation_from_fields, match
from hamsrv.sync.qsl_store import SERVICE_NAMES, SERVICES, Login, job_name, load_login
from hamsrv.sync.scheduler import Job, Progress, Scheduler

log = logging.getLogger(__name__)

EQSL_OVERLAP = timedelta(hours=1)  # RcvdSince reaches back this far before the last run: clocks differ,
# and what comes twice is recognised (not counted as new)
RETRY_MIN = 300.0  # first retry after a failure (5 min), doubling up to the sync interval
MATCH_BATCH = 2000  # unmatched confirmations matched per query
_STATUS_COLUMNS = ("status", "last_run_at", "last_ok_at", "last_error_at", "error", "failures", "summary",
                   "next_run_at", "details")
MAX_BODY = 256 << 20  # bytes one answer may have (a whole-life LoTW report is a few tens of MB)


class _RedactQueries(logging.Filter):
    """httpx logs every request URL at INFO, and LoTW and eQSL take the password in the query string:
    take queries out of httpx's log lines, whatever level the root logger is at."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(a.copy_with(query=None) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


_httpx_log = logging.getLogger("httpx")
if not any(isinstance(f, _RedactQueries) for f in _httpx_log.filters):
    _httpx_log.addFilter(_RedactQueries())


@dataclass
class Outcome:
    """One run: confirmations new to hamsrv, matched now, and still waiting for a QSO."""

    new: int = 0
    matched: int = 0
    unmatched: int = 0
    rejected: int = 0  # records that could not be read as a QSO (no call, bad date ...)

    def summary(self, service: str) -> str:
        text = (f"{self.new} new {SERVICE_NAMES[service]} confirmations, {self.matched} matched to the log, "
                f"{self.unmatched} without a QSO yet")
        return text + (f", {self.rejected} unreadable" if self.rejected else "")


@dataclass
class QslService:
    db: Database
    vault: Vault
    lotw_url: str = "https://lotw.arrl.org"
    eqsl_url: str = "https://www.eqsl.cc"
    interval: float = 6 * 3600.0
    timeout: float = 120.0
    scheduler: Scheduler | None = None
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    @classmethod
    def from_config(cls, config: Config, db: Database, scheduler: Scheduler | None = None) -> QslService:
        return cls(db, Vault.load(config.secret_key, config.data_dir), lotw_url=config.lotw_url,
                   eqsl_url=config.eqsl_url, interval=config.qsl_sync_hours * 3600, timeout=config.qsl_timeout,
                   scheduler=scheduler)

    # ---- jobs on the scheduler
    def job(self, user: Row, service: str) -> Job:
        name = job_name(service, user["callsign"])

        async def run(progress: Progress) -> str:
            try:
                return (await self.sync(user, service, progress)).summary(service)
            except Exception as exc:  # the user's pages hear of it (best effort), the scheduler records it
                with suppress(DatabaseError):
                    await notify(self.db, bus_wire.CHANNEL, bus_wire.for_user(
                        user["id"], bus_wire.sync_failed(service, name, str(exc) or type(exc).__name__)))
                raise
        return Job(name, run, interval=self.interval, timeout=self.timeout + 30,
                   retry_min=min(RETRY_MIN, self.interval), owner_id=user["id"])

    async def schedule_all(self) -> int:
        """Put every stored login's sync on the scheduler (at start); returns how many."""
        assert self.scheduler is not None
        rows = await qsl_sql.logins_with_users(self.db)
        for row in rows:
            self.scheduler.add(self.job({"id": row["id"], "callsign": row["callsign"]}, row["service"]))
        return len(rows)

    def login_saved(self, user: Row, service: str) -> None:
        """A new or changed login: its sync runs now."""
        if self.scheduler is not None:
            job = self.job(user, service)
            self.scheduler.add(job)
            self.scheduler.wake(job.name)

    def login_removed(self, user: Row, service: str) -> None:
        if self.scheduler is not None:
            self.scheduler.remove(job_name(service, user["callsign"]))

    # ---- one run
    async def sync(self, user: Row, service: str, progress: Progress = lambda _: None) -> Outcome:
        """Download, keep, match; raises QslError (in words) when the service or the login fails."""
        name = SERVICE_NAMES[service]
        try:
            login = await load_login(self.db, self.vault, user["id"], service)
        except VaultError as exc:
            raise QslError("login", f"the stored {name} password cannot be read: {exc}") from None
        if login is None:
            raise QslError("login", f"no {name} login is stored (PUT /api/qsl/credentials/{service})")
        cursor = await sync_state.cursor(self.db, job_name(service, user["callsign"]))
        started = self.now()
        progress(f"asking {name} for confirmations since {cursor or 'the beginning'}")
        with trio.move_on_after(self.timeout) as waited:
            if service == "lotw":
                records, next_cursor = await self._download_lotw(login, cursor)
            else:
                records, next_cursor = await self._download_eqsl(login, cursor, started)
        if waited.cancelled_caught:
            raise QslError("timeout", f"{name} did not answer within {self.timeout:g} s")
        progress(f"{len(records)} confirmations received")
        confirmations, rejected = [], 0
        for record in records:
            made = confirmation_from_fields(service, record.fields, started.date())
            if isinstance(made, Reject):
                rejected += 1
            else:
                confirmations.append(made)
        outcome = await self._store(user, service, confirmations, next_cursor or cursor)
        outcome.rejected = rejected
        return outcome

    async def _get(self, client: httpx.AsyncClient, name: str, url: str,
                   params: Mapping[str, str] | None = None) -> bytes:
        """One GET; every failure becomes a QslError in words (never the URL: it holds the password)."""
        try:
            async with client.stream("GET", url, params=params) as response:
                if response.status_code != 200:
                    raise QslError("down", f"{name} is down: HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BODY:
                        raise QslError("unexpected", f"{name} sent more than {MAX_BODY >> 20} MB")
                return bytes(body)
        except httpx.TimeoutException:
            raise QslError("timeout", f"{name} did not answer within {self.timeout:g} s") from None
        except httpx.ConnectError as exc:
            raise QslError("down", f"{name} cannot be reached: {_reason(exc)}") from None
        except httpx.HTTPError as exc:
            raise QslError("down", f"{name} broke off the answer: {type(exc).__name__}") from None

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.timeout, follow_redirects=False,
                                 headers={"User-Agent": "hamsrv QSL sync"})

    async def _download_lotw(self, login: Login, since: str | None) -> tuple[list[Record], str | None]:
        async with self._client() as client:
            body = await self._get(client, "LoTW", self.lotw_url.rstrip("/") + lotw.REPORT_PATH,
                                   lotw.report_query(login.username, login.password, since))
        report = await trio.to_thread.run_sync(lotw.read_report, body)
        return report.records, report.last_qsl

    async def _download_eqsl(self, login: Login, since: str | None,
                             started: datetime) -> tuple[list[Record], str | None]:
        page_url = self.eqsl_url.rstrip("/") + eqsl.INBOX_PATH
        async with self._client() as client:
            page = await self._get(client, "eQSL", page_url, eqsl.inbox_query(login.username, login.password, since))
            link = eqsl.read_inbox_page(page)
            since_next = eqsl.since_text(started - EQSL_OVERLAP)
            if link is None:  # nothing new
                return [], since_next
            file_url = urljoin(page_url, link)
            if urlsplit(file_url)[:2] != urlsplit(page_url)[:2]:
                raise QslError("unexpected", "eQSL pointed to a file on another site; it was not fetched")
            body = await self._get(client, "eQSL", file_url)
        records = await trio.to_thread.run_sync(eqsl.read_inbox_file, body)
        return records, since_next

    async def _store(self, user: Row, service: str, confirmations: list[Confirmation],
                     cursor: str | None) -> Outcome:
        """Keep the confirmations, match every unmatched one, mark the QSOs, leave a notice, move the
        resume point: one transaction, so a failure leaves nothing half done."""
        outcome = Outcome()
        async with self.db.transaction() as conn:
            if confirmations:
                outcome.new = await qsl_sql.insert_confirmations(
                    conn, user["id"], service,
                    [(c.call, c.start_at, c.band, c.mode, c.mode_group, c.qsl_date, c.fields) for c in confirmations])
            outcome.matched = await self._match_waiting(conn, user["id"], service)
            outcome.unmatched = await qsl_sql.count_unmatched(conn, user["id"], service)
            if outcome.new:
                text = f"{outcome.new} new {SERVICE_NAMES[service]} confirmations"
                await qsl_sql.add_notice(conn, user["id"], service, text, outcome.new, outcome.matched)
                await execute_on(conn, NOTIFY_SQL, [bus_wire.CHANNEL, bus_wire.for_user(  # sent at commit
                    user["id"], bus_wire.qsl_event(service, outcome.new, outcome.matched, text))])
            await sync_state.save_cursor(  # the scheduler made the row already; a direct call (tests) may not have
                conn, job_name(service, user["callsign"]), user["id"], cursor,
                {"new": outcome.new, "matched": outcome.matched, "unmatched": outcome.unmatched})
        return outcome

    async def _match_waiting(self, conn: Any, user_id: int, service: str) -> int:
        """Match the user's unmatched confirmations (new ones and those still waiting for their QSO)."""
        matched_in_all, after = 0, 0
        while True:
            rows = await qsl_sql.unmatched_after(conn, user_id, service, after, MATCH_BATCH)
            if not rows:
                return matched_in_all
            after = rows[-1]["id"]
            waiting = [Confirmation(service, r["call"], r["start_at"], r["band"], r["mode"], r["submode"],
                                    r["mode_group"], r["qsl_date"]) for r in rows]
            candidates = await qsl_sql.candidate_qsos(conn, user_id, service, [c.call for c in waiting],
                                                      [c.start_at for c in waiting])
            pairs = match(waiting, [LoggedQso(r["id"], r["call"], r["start_at"], r["band"], r["freq"], r["mode"],
                                              r["submode"]) for r in candidates])
            if pairs:
                ids = [rows[i]["id"] for i in pairs]
                await qsl_sql.record_matches(conn, user_id, service, ids, list(pairs.values()),
                                             [waiting[i].qsl_date for i in pairs])
                matched_in_all += len(pairs)

    # ---- what the user sees
    async def status(self, user: Row) -> dict[str, Any]:
        """Per service: linked or not, health in words, counts; the unseen notices."""
        services = []
        accounts = await qsl_sql.linked_services(self.db, user["id"])
        totals = await qsl_sql.totals(self.db, user["id"])
        for service in SERVICES:
            row = await sync_state.get(self.db, job_name(service, user["callsign"]), _STATUS_COLUMNS) or {}
            failing = bool(row.get("failures"))
            services.append({
                "service": service, "name": SERVICE_NAMES[service], "linked": service in accounts,
                "status": row.get("status", "never" if service in accounts else "not linked"),
                "last_attempt": json_value(row.get("last_run_at")), "last_success": json_value(row.get("last_ok_at")),
                "next_run": json_value(row.get("next_run_at")),
                "error": row.get("error") if failing else None, "failures": row.get("failures", 0),
                "summary": row.get("summary"), "last_run": row.get("details") or None,
                "confirmations": totals.get((service, True), 0) + totals.get((service, False), 0),
                "unmatched": totals.get((service, False), 0),
            })
        notices = await qsl_sql.unseen_notices(self.db, user["id"])
        return {"services": services, "notifications": [{k: json_value(v) for k, v in n.items()} for n in notices]}

    async def unmatched(self, user: Row, service: str | None, limit: int) -> list[dict[str, Any]]:
        rows = await qsl_sql.unmatched(self.db, user["id"], service, limit)
        return [{k: json_value(v) for k, v in r.items()} for r in rows]

    async def mark_seen(self, user: Row) -> int:
        return await qsl_sql.mark_seen(self.db, user["id"])


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.split("] ", 1)[-1][:200]  # "[Errno 111] Connection refused" -> "Connection refused"

