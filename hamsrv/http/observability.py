"""What /metrics tells beyond the spot path, and the access log.

* HTTP: requests by method, route and status, and their latency (a histogram by method and route; the
  route is the URL rule, `/api/qsos/<int:qso_id>`, so ids do not make a series each).
* Imports: jobs by status and records by outcome, read from `import_jobs` at each scrape (so they cover
  every worker process and survive restarts), and the records per second of the running jobs.
* The database pool: connections in use, borrowers that waited or gave up, failed connects.
* The access log: one line per request on the `hamsrv.access` logger, when HAMSRV_ACCESS_LOG is on.
"""

from __future__ import annotations

import logging
import time

from quart import Response, g, request
from quart_trio import QuartTrio

from hamsrv.db import import_jobs
from hamsrv.db.import_jobs import RECORD_COUNTS
from hamsrv.http.common import AppState

ACCESS_LOG = logging.getLogger("hamsrv.access")


def install(app: QuartTrio, state: AppState) -> None:
    requests = state.metrics.labelled_counter("hamsrv_http_requests_total",
                                              "HTTP requests by method, route and status")
    latency = state.metrics.histogram("hamsrv_http_request_duration_seconds",
                                      "HTTP request time until the answer's head, by method and route")
    stats, m = state.db.pool.statistics, state.metrics
    m.gauge("hamsrv_db_pool_size", "Database connections the pool may open", lambda: stats().max_size)
    m.gauge("hamsrv_db_pool_in_use", "Database connections borrowed now", lambda: stats().in_use)
    m.gauge("hamsrv_db_pool_waits_total", "Borrowers that found every connection in use and waited",
            lambda: stats().waits, "counter")
    m.gauge("hamsrv_db_pool_timeouts_total", "Borrowers that gave up waiting for a connection",
            lambda: stats().timeouts, "counter")
    m.gauge("hamsrv_db_pool_connect_errors_total", "Failed attempts to open a database connection",
            lambda: stats().connect_errors, "counter")
    m.gauge("hamsrv_db_pool_connects_total", "Database connections opened", lambda: stats().connects, "counter")

    import_figures = ImportFigures(state)

    @app.get("/metrics")
    async def metrics() -> Response:
        await import_figures.refresh(state)
        return Response(state.metrics.render(), content_type="text/plain; version=0.0.4")

    @app.before_request
    async def started() -> None:
        g.started = time.perf_counter()

    @app.after_request
    async def finished(response: Response) -> Response:
        seconds = time.perf_counter() - getattr(g, "started", time.perf_counter())
        route = request.url_rule.rule if request.url_rule is not None else "(no route)"
        requests.inc((("method", request.method), ("route", route), ("status", str(response.status_code))))
        latency.observe((("method", request.method), ("route", route)), seconds)
        if state.access_log:
            ACCESS_LOG.info('%s "%s %s" %d %s %.1fms', request.remote_addr, request.method, request.full_path
                            if request.query_string else request.path, response.status_code,
                            response.content_length if response.content_length is not None else "-",
                            seconds * 1000)
        return response


class ImportFigures:
    """Import jobs and records from the database, refreshed before each scrape."""

    def __init__(self, state: AppState):
        self.jobs: dict[str, float] = {}
        self.records: dict[str, float] = {}
        self.rate = 0.0
        m = state.metrics
        m.labelled_gauge("hamsrv_import_jobs", "Import jobs by status (failed: the job could not run)", "status",
                         lambda: self.jobs)
        m.labelled_gauge("hamsrv_import_records", "Imported records by outcome, over every job kept",
                         "outcome", lambda: self.records)
        m.gauge("hamsrv_import_records_per_second", "Records per second of the running imports", lambda: self.rate)

    async def refresh(self, state: AppState) -> None:
        rows = await import_jobs.totals_by_status(state.db)
        self.jobs = {s: 0.0 for s in ("receiving", "queued", "running", "done", "failed")}
        self.records = {o: 0.0 for o in RECORD_COUNTS}
        self.rate = 0.0
        for row in rows:
            self.jobs[row["status"]] = float(row["jobs"])
            for outcome in RECORD_COUNTS:
                self.records[outcome] += float(row[outcome] or 0)
            self.rate += float(row["rate"] or 0)
