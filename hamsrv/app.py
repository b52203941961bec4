"""The root nursery: every service of the process, started in dependency order.

Each service is started with `await nursery.start(...)`, so it is ready (bound, migrated, connected)
before the next one that needs it starts. SIGTERM/SIGINT set `shutdown`: the firehose says goodbye,
HTTP stops accepting and lets requests in flight finish, then everything else is cancelled.
"""

from __future__ import annotations

import functools
import logging
import secrets
import signal
import ssl
from dataclasses import dataclass
from typing import Any

import trio

from hamsrv import cty
from hamsrv.bus.service import UserBus, has_account
from hamsrv.config import Config
from hamsrv.db.database import Database
from hamsrv.errors import ConfigError
from hamsrv.firehose.bridge import Bridge
from hamsrv.firehose.bulletins import Board, firehose_message
from hamsrv.firehose.enrich import make_prepare
from hamsrv.firehose.fanout import Firehose
from hamsrv.firehose.history import keep_history
from hamsrv.firehose.hub import Hub
from hamsrv.firehose.links import parse_commands, parse_links, serve_links
from hamsrv.firehose.node import ClusterLimits, FeedPolicy, serve_cluster
from hamsrv.firehose.peering import Peering, parse_peers
from hamsrv.firehose.qso_events import listen_qsos
from hamsrv.firehose.ring import SpotRing
from hamsrv.http.api import create_app
from hamsrv.http.common import AppState
from hamsrv.http.listener import serve_public
from hamsrv.http.mtls import serve_auth
from hamsrv.identity.cluster_login import ClusterSignIn
from hamsrv.identity.policy import Policy
from hamsrv.identity.sessions import sweep_expired
from hamsrv.ingest.jobs import JobRunner
from hamsrv.ingest.normalize import use_entities
from hamsrv.metrics import Registry
from hamsrv.sync import noaa, pdns
from hamsrv.sync import service as sync_service
from hamsrv.sync.qsl import QslService
from hamsrv.workers import Follower, Primary, WorkerRole, read_status

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0  # seconds closing the database pool may take at exit


@dataclass
class Running:
    """Handed to whoever started the app (tests, the CLI): where it listens and how to stop it."""

    http_port: int
    cluster_port: int
    db: Database
    hub: Hub
    shutdown: trio.Event
    auth_port: int = 0  # the LoTW certificate sign-in listener (0: off)


async def _on_signals(shutdown: trio.Event, cancel: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if shutdown.is_set():  # a second signal: stop now
                cancel.cancel()
                return
            log.info("%s: shutting down", signal.Signals(signum).name)
            shutdown.set()


def _ssl_context(config: Config) -> ssl.SSLContext | None:
    if not config.tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)  # type: ignore[arg-type]
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"HAMSRV_TLS_CERT/HAMSRV_TLS_KEY: cannot load them: {exc}") from None
    context.set_alpn_protocols(["http/1.1"])
    return context


async def run(config: Config, *, handle_signals: bool = True, role: WorkerRole | None = None,
              task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED) -> None:
    """The whole process; with `role`, one worker of `hamsrv serve --workers N` (see workers.py):
    the primary also owns spot ingress, the others mirror its spots from shared memory."""
    shutdown = trio.Event()
    metrics = Registry()
    feeds = FeedPolicy.parse(config.cluster_feeds)  # ConfigError before anything starts
    links = parse_links(config.cluster_links, config.node_call)
    peers = parse_peers(config.cluster_peers)
    ssl_context = _ssl_context(config)
    db = await Database.open(config.database_url, config.data_dir, pool_size=config.db_pool_size)
    try:
        async with trio.open_nursery() as root:
            if handle_signals:
                root.start_soon(_on_signals, shutdown, root.cancel_scope)
            table = cty.load(config.data_dir)
            use_entities(table)  # QSOs get DXCC, country, continent and zone from the same table
            hub = Hub(SpotRing(max_age=config.ring_hours * 3600), tick=config.tick_ms / 1000,
                      prepare=make_prepare(table, trio.current_time), metrics=metrics)
            follower = Follower(role, hub) if role is not None and not role.primary else None
            primary = Primary(role, hub) if role is not None and role.primary else None
            bridge = None
            cluster_port, link_states, peer_states, board = 0, [], [], Board()
            roster: dict[str, list[Any]] = {}  # cluster users by call, shared with the peering's PC92 records
            if follower is not None:  # ingress belongs to the primary: only mirror its spots
                await root.start(follower.run)
            else:
                await root.start(keep_history, hub, config.data_dir, config.spot_history_seconds)
                await root.start(hub.run)
                await root.start(listen_qsos, db, hub)
                bridge = Bridge(hub, config.redis_url, node_id=config.node_id) if config.redis_url else None
                if bridge is not None:
                    await root.start(bridge.run)
                cluster_port = await root.start(
                    lambda task_status: serve_cluster(
                        hub, config.cluster.host, config.cluster.port, node_call=config.node_call, board=board,
                        feeds=feeds, metrics=metrics, task_status=task_status,
                        limits=ClusterLimits(config.cluster_max_connections, config.cluster_per_ip,
                                             config.cluster_idle_hours * 3600, config.cluster_spot_rate),
                        check_secret=ClusterSignIn(db).check, roster=roster,
                        reachable=functools.partial(has_account, db)))
                link_states = await root.start(lambda task_status: serve_links(
                    hub, links, metrics=metrics, board=board, task_status=task_status,
                    commands=parse_commands(config.cluster_link_commands)))
                peer_states = await root.start(Peering(hub, board, peers, users=lambda: list(roster)).run)
            firehose = Firehose(hub, metrics=metrics, per_ip_limit=config.ws_per_ip)
            board.add_listener(lambda posted: firehose.broadcast(firehose_message(posted)))
            imports = JobRunner(db, batch_records=config.import_batch)
            await root.start(imports.run)
            bus = UserBus(db, config.node_id or (role.ring if role is not None else secrets.token_hex(6)), metrics,
                          board=board if follower is None else None, roster=roster,
                          reachable=functools.partial(has_account, db), node_call=config.node_call)
            board.add_listener(bus.bulletin_posted)
            imports.add_listener(bus.import_progress)
            await root.start(bus.run)
            scheduler = await root.start(sync_service.serve_syncs, config, db, metrics)
            root.start_soon(sweep_expired, db)
            state = AppState(db=db, hub=hub, metrics=metrics, imports=imports, max_upload_bytes=config.max_upload_mb << 20,
                             max_json_bytes=config.max_json_kb << 10, body_timeout=config.body_timeout,
                             spool_dir=config.data_dir / "uploads",
                             web_dir=config.web_dir, cty=table, identity=Policy.from_config(config),
                             access_log=config.access_log,
                             qsl=QslService.from_config(config, db, scheduler), bus=bus)
            state.health_extras["links"] = lambda: [s.as_dict() for s in link_states]
            state.health_extras["peers"] = lambda: [s.as_dict() for s in peer_states]
            state.health_extras["firehose"] = firehose.statistics
            state.health_extras["bus"] = bus.statistics
            state.health_extras["syncs"] = sync_service.health(scheduler)
            state.latest_solar = functools.partial(noaa.latest_reading, db)
            state.member_dns = pdns.member_dns(config)
            await state.qsl.schedule_all()
            if bridge is not None:
                state.health_extras["redis"] = bridge.statistics
            if role is not None:
                state.health_extras["workers"] = lambda: {"this": role.index, "all": read_status(role.status)}
                metrics.labelled_gauge("hamsrv_worker_up", "Worker processes running (1) or restarting (0)",
                                       "worker", lambda: {str(w["worker"]): float(w["up"])
                                                          for w in read_status(role.status)})
                metrics.labelled_gauge("hamsrv_worker_restarts", "Times the supervisor restarted a worker",
                                       "worker", lambda: {str(w["worker"]): float(w["restarts"])
                                                          for w in read_status(role.status)})
            if follower is not None:
                state.forward_spot = follower.forward
            app = create_app(state)
            stop_http = trio.Event()
            async with trio.open_nursery() as front:
                http_port = await front.start(lambda task_status: serve_public(
                    app, firehose, config.http.host, config.http.port, ssl_context=ssl_context,
                    grace=config.shutdown_grace, shutdown=stop_http, reuse_port=role is not None,
                    task_status=task_status))
                auth_port = await front.start(serve_auth, state, config, stop_http, role is not None) \
                    if config.client_ca is not None else 0
                state.auth_port = auth_port
                if primary is not None:  # last: the supervisor takes the intake socket as "ready"
                    await front.start(primary.serve_intake)
                log.info("hamsrv ready: http %s:%d, cluster %s:%d", config.http.host, http_port,
                         config.cluster.host, cluster_port)
                task_status.started(Running(http_port, cluster_port, db, hub, shutdown, auth_port))
                await shutdown.wait()
                with trio.move_on_after(1.0):
                    await firehose.close_all(1001)
                stop_http.set()
            root.cancel_scope.cancel()
    finally:
        # shielded so a cancelled run still closes the pool, with a deadline so that SIGTERM always
        # ends the process even when the database host stops answering
        with trio.CancelScope(shield=True, deadline=trio.current_time() + CLOSE_TIMEOUT):
            await db.close()
