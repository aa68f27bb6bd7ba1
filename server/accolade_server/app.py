"""Build the server from one Settings object: store → services → grpc.aio server."""

from __future__ import annotations

import asyncio
import functools
import gc
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy.ext.asyncio import AsyncEngine

from accolade.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    backfills_pb2,
    backfills_pb2_grpc,
    insights_pb2,
    insights_pb2_grpc,
    leaderboards_pb2,
    leaderboards_pb2_grpc,
    points_pb2,
    points_pb2_grpc,
    tracker_pb2,
    tracker_pb2_grpc,
    users_pb2,
    users_pb2_grpc,
)
from accolade_server.auth import keys
from accolade_server.auth.guard import Guard, is_loopback_listen
from accolade_server.auth.keys import ApiKey
from accolade_server.config import Settings
from accolade_server.domain.errors import FailedPrecondition
from accolade_server.domain.model import AwardRecord
from accolade_server.http.app import Services, build_http_app
from accolade_server.http.server import HttpServer, bind_socket
from accolade_server.metrics import Metrics
from accolade_server.notify.alerts import AdminAlerts
from accolade_server.notify.broker import Broker
from accolade_server.notify.delivery import DeliveryWorker
from accolade_server.notify.ga4 import ga4_sinks
from accolade_server.notify.listener import PgListener
from accolade_server.notify.sinks import admin_sinks, build_sinks
from accolade_server.rpc.admin import AchievementAdminServicer
from accolade_server.rpc.backfills import BackfillsServicer
from accolade_server.rpc.insights import InsightsServicer
from accolade_server.rpc.leaderboards import LeaderboardsServicer
from accolade_server.rpc.pipeline import PipelineInterceptor
from accolade_server.rpc.points import PointsLedgerServicer
from accolade_server.rpc.tracker import BadgeTrackerServicer
from accolade_server.rpc.users import UserDirectoryServicer
from accolade_server.service.achievements import AchievementService
from accolade_server.service.awards import AwardService
from accolade_server.service.backfill_worker import BackfillWorker
from accolade_server.service.backfills import BackfillService
from accolade_server.service.catalogue import Catalogue
from accolade_server.service.diagnostics import ConditionErrors
from accolade_server.service.explain import ExplainService
from accolade_server.service.insights import InsightsService
from accolade_server.service.leaderboards import LeaderboardService
from accolade_server.service.pacing import Pace
from accolade_server.service.points import PointsService
from accolade_server.service.retention import Pruner
from accolade_server.service.rulecache import RuleCache
from accolade_server.service.shapes import EventTypeService
from accolade_server.service.tracking import TrackingService
from accolade_server.service.users import UserService
from accolade_server.service.watch import WatchService
from accolade_server.store import batchstore, migrate
from accolade_server.store.db import channel_name, ensure_sqlite_directory, make_engine
from accolade_server.store.scores import Scorer
from accolade_server.store.uow import UnitOfWork
from accolade_server.tracing import Tracing, build_tracing

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor

log = structlog.get_logger("accolade.server")

SERVICE_NAMES = (
    admin_pb2.DESCRIPTOR.services_by_name["AchievementAdmin"].full_name,
    tracker_pb2.DESCRIPTOR.services_by_name["BadgeTracker"].full_name,
    users_pb2.DESCRIPTOR.services_by_name["UserDirectory"].full_name,
    points_pb2.DESCRIPTOR.services_by_name["PointsLedger"].full_name,
    leaderboards_pb2.DESCRIPTOR.services_by_name["Leaderboards"].full_name,
    insights_pb2.DESCRIPTOR.services_by_name["Insights"].full_name,
    backfills_pb2.DESCRIPTOR.services_by_name["Backfills"].full_name,
)

#: Garbage-collection thresholds of the serving process (young, middle, old generation; see
#: `serve`): the young generation every 100,000 net allocations instead of 700. Measured with
#: `gc.callbacks` over TrackEvents batches of 500 (busy 2-core machine): at 20,000 the young
#: generation was still collected about once per batch (a batch holds 20,000-50,000 live
#: container objects at its peak, which every such collection walks and promotes), 12-40 µs
#: per event; at 700 about 100 collections per 1,000 events, 30-75 µs per event; at 100,000
#: none, also for batches of the largest size (1,000). Objects are freed by reference
#: counting as before; only garbage in reference cycles waits longer (up to that many objects).
GC_THRESHOLDS = (100_000, 10, 10)

# Idle streams survive proxies that drop quiet connections; clients may ping every 20 s.
SERVER_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
    ("grpc.http2.max_pings_without_data", 0),
]


@dataclass
class App:
    server: grpc.aio.Server
    engine: AsyncEngine
    health: health.aio.HealthServicer
    port: int
    broker: Broker
    listener: PgListener | None
    guard: Guard | None = None
    delivery: DeliveryWorker | None = None
    pruner: Pruner | None = None
    metrics: Metrics | None = None
    metrics_port: int | None = None
    http: HttpServer | None = None
    tracing: Tracing | None = None
    backfills: BackfillWorker | None = None

    @property
    def http_port(self) -> int | None:
        return self.http.port if self.http is not None else None

    alerts: AdminAlerts | None = None

    async def stop(self, grace: float) -> None:
        """Health NOT_SERVING; both listeners stop accepting; end streams with UNAVAILABLE
        (clients resume on another replica) while unary calls drain; then close the
        database."""
        await self.health.enter_graceful_shutdown()
        stopping = [asyncio.create_task(self.server.stop(grace))]
        if self.http is not None:
            stopping.append(asyncio.create_task(self.http.stop()))
        await asyncio.sleep(0)  # let both refuse new calls before streams end
        await self.broker.close()
        await asyncio.gather(*stopping)
        if self.delivery is not None:
            await self.delivery.close()
        if self.pruner is not None:
            await self.pruner.close()
        if self.backfills is not None:
            await self.backfills.close()
        if self.listener is not None:
            await self.listener.close()
        if self.guard is not None:
            await self.guard.close()
        if self.alerts is not None:
            await self.alerts.close()
        await self.engine.dispose()
        if self.metrics is not None:
            self.metrics.close()
        if self.tracing is not None:
            await self.tracing.shutdown()


async def prepare_database(settings: Settings, engine: AsyncEngine) -> None:
    """Migrate the embedded SQLite database; require an up-to-date schema elsewhere."""
    if settings.is_sqlite:
        ensure_sqlite_directory(settings.database_url)
        await migrate.upgrade(engine)
    else:
        await migrate.ensure_current(engine)


async def build(settings: Settings, *, span_processor: SpanProcessor | None = None) -> App:
    """Build and start a server; `settings.listen` may use port 0 (see `App.port`).

    `span_processor` turns tracing on with that processor (tests pass an in-memory one)."""
    engine = make_engine(settings.database_url, schema=settings.database_schema)
    tracing = build_tracing(settings, span_processor)
    try:
        return await _build(settings, engine, tracing)
    except BaseException:
        await engine.dispose()
        if tracing is not None:
            await tracing.shutdown()
        raise


async def _build(settings: Settings, engine: AsyncEngine, tracing: Tracing | None) -> App:
    # Everything that can fail comes before any background task starts.
    if tracing is not None:
        tracing.instrument_engine(engine)
    await prepare_database(settings, engine)
    metrics = Metrics(max_achievement_labels=settings.metrics_max_achievement_labels)
    uow = UnitOfWork(
        engine,
        schema=settings.database_schema,
        batch_store=batchstore.for_backend(settings.is_sqlite),
    )

    async def load_keys() -> list[ApiKey]:
        async with uow.transaction() as repo:
            return await keys.all_keys(repo, active_only=True)

    guard = Guard(settings, load_keys)
    await guard.refresh()
    for option, listen in (("listen", settings.listen), ("http_listen", settings.http_listen)):
        if guard.open_mode and not settings.insecure and listen and not is_loopback_listen(listen):
            raise FailedPrecondition(
                f"refusing to listen on {listen} ({option}) with no API keys: anyone could "
                "call it. Create a key first (`accolade keys create --scope admin`), listen "
                "on 127.0.0.1, or pass --insecure (ACCOLADE_INSECURE=true) to accept that"
            )
    options = [*SERVER_OPTIONS, ("grpc.max_receive_message_length", settings.max_message_bytes)]
    interceptors: list[grpc.aio.ServerInterceptor] = [PipelineInterceptor(metrics, guard)]
    if tracing is not None:  # first, so that calls the guard refuses are traced too
        interceptors.insert(0, tracing.grpc_interceptor())
    server = grpc.aio.server(interceptors=interceptors, options=options)
    try:
        credentials = server_credentials(settings)
        if credentials is None:
            port = server.add_insecure_port(settings.listen)
        else:
            port = server.add_secure_port(settings.listen, credentials)
    except (RuntimeError, OSError) as exc:
        raise FailedPrecondition(f"cannot listen on {settings.listen}: {exc}") from exc

    alerts = AdminAlerts(admin_sinks(settings, "admin-alert"))
    rules = RuleCache(settings, metrics=metrics, alerts=alerts)
    scorer = Scorer(rules, retention=settings.leaderboard_retention_periods)
    uow.batch_store = functools.partial(batchstore.for_backend(settings.is_sqlite), scorer=scorer)
    catalogue = Catalogue(uow, rules)
    await warn_untracked_rules(catalogue, settings)
    broker = Broker(*_log_readers(uow, catalogue), poll_seconds=settings.award_poll_seconds)
    sinks = [*build_sinks(settings), *ga4_sinks(settings)]
    worker = (
        DeliveryWorker(uow, sinks, settings, metrics=metrics, tracing=tracing) if sinks else None
    )

    def awards_committed(records: Sequence[AwardRecord]) -> None:
        for r in records:
            metrics.awards.labels(
                metrics.achievement_label(r.achievement_id), r.source.value, r.kind.value
            ).inc()
        broker.committed(records)
        if worker is not None:
            worker.wake()

    uow.on_awards = awards_committed
    uow.on_acquire = metrics.db_acquire.observe
    conditions = ConditionErrors(metrics)
    achievements = AchievementService(uow, settings)
    pace = Pace(settings.backfill_live_yield)  # backfills give way to live traffic
    tracking = TrackingService(
        uow, settings, rules, metrics=metrics, conditions=conditions, tracing=tracing, pace=pace
    )
    awards = AwardService(uow, settings, rules)
    watch = WatchService(uow, broker, catalogue, metrics=metrics)
    admin_servicer = AchievementAdminServicer(
        achievements, awards, catalogue, EventTypeService(uow), guard=guard
    )
    backfill_worker = BackfillWorker(uow, settings, rules, pace=pace)
    achievements.on_backfill = backfill_worker.wake
    backfills = BackfillService(uow, settings, rules, wake=backfill_worker.wake)
    backfills_servicer = BackfillsServicer(backfills, guard)
    backfills_pb2_grpc.add_BackfillsServicer_to_server(backfills_servicer, server)
    tracker_servicer = BadgeTrackerServicer(tracking, awards, watch, catalogue)
    admin_pb2_grpc.add_AchievementAdminServicer_to_server(admin_servicer, server)
    tracker_pb2_grpc.add_BadgeTrackerServicer_to_server(tracker_servicer, server)
    users = UserService(uow, settings)
    user_directory = UserDirectoryServicer(users)
    users_pb2_grpc.add_UserDirectoryServicer_to_server(user_directory, server)
    points = PointsService(uow, settings)
    points_ledger = PointsLedgerServicer(
        points, lambda context: guard.caller(context.invocation_metadata() or ())
    )
    points_pb2_grpc.add_PointsLedgerServicer_to_server(points_ledger, server)
    leaderboards = LeaderboardService(uow, settings)
    leaderboards_servicer = LeaderboardsServicer(leaderboards)
    leaderboards_pb2_grpc.add_LeaderboardsServicer_to_server(leaderboards_servicer, server)
    insights = InsightsService(uow, settings)
    explain = ExplainService(uow, settings, rules)
    insights_servicer = InsightsServicer(
        insights, explain, lambda ctx: guard.holds(ctx.invocation_metadata() or (), "admin")
    )
    insights_pb2_grpc.add_InsightsServicer_to_server(insights_servicer, server)
    http = None
    if settings.http_listen:
        http = HttpServer(
            build_http_app(
                Services(
                    settings,
                    achievements,
                    tracking,
                    awards,
                    watch,
                    catalogue,
                    guard=guard,
                    uow=uow,
                    tracker=tracker_servicer,
                    admin=admin_servicer,
                    users=users,
                    user_directory=user_directory,
                    metrics=metrics,
                    tracing=tracing,
                    points=points,
                    points_ledger=points_ledger,
                    leaderboards=leaderboards,
                    leaderboards_servicer=leaderboards_servicer,
                    insights=insights,
                    explain=explain,
                    insights_servicer=insights_servicer,
                    backfills=backfills,
                    backfills_servicer=backfills_servicer,
                )
            ),
            bind_socket(settings.http_listen, reuse_port=settings.workers > 1),
            grace=settings.shutdown_grace_seconds,
            certfile=settings.tls_cert_file,
            keyfile=settings.tls_key_file,
            ca_certs=settings.tls_client_ca_file,
        )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )

    await broker.start()
    if worker is not None:
        await worker.start()
    guard.start()
    backfill_worker.start()
    listener = None
    if not settings.is_sqlite:
        awards_channel = channel_name("awards", settings.database_schema)
        keys_channel = channel_name("keys", settings.database_schema)

        def notified(channel: str) -> None:
            if channel == keys_channel:
                guard.wake()
            else:  # another replica (or this one) committed entries
                broker.wake()
                if worker is not None:
                    worker.wake()

        listener = PgListener(
            settings.database_url,
            settings.database_schema,
            [awards_channel, keys_channel],
            notified,
        )
        listener.start()
    pruner = None
    if settings.event_retention_days:
        pruner = Pruner(uow, settings.event_retention_days)
        pruner.start()
    await server.start()
    if http is not None:
        http.start()
    metrics_port = metrics.serve(settings.metrics_listen) if settings.metrics_listen else None
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return App(
        server=server,
        engine=engine,
        health=health_servicer,
        port=port,
        broker=broker,
        listener=listener,
        guard=guard,
        delivery=worker,
        pruner=pruner,
        metrics=metrics,
        metrics_port=metrics_port,
        http=http,
        alerts=alerts,
        tracing=tracing,
        backfills=backfill_worker,
    )


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials from the configured PEM files (mutual TLS with a client CA)."""
    if not settings.tls_cert_file or not settings.tls_key_file:
        return None

    def read(path: str, option: str) -> bytes:
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise FailedPrecondition(f"{option}: cannot read {path}: {exc.strerror}") from exc

    chain = read(settings.tls_cert_file, "tls_cert_file")
    key = read(settings.tls_key_file, "tls_key_file")
    client_ca = (
        read(settings.tls_client_ca_file, "tls_client_ca_file")
        if settings.tls_client_ca_file
        else None
    )
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def _log_readers(
    uow: UnitOfWork, catalogue: Catalogue
) -> tuple[Callable[[int, int], Awaitable[Sequence[AwardRecord]]], Callable[[], Awaitable[int]]]:
    async def read_after(cursor: int, limit: int) -> Sequence[AwardRecord]:
        async with uow.transaction() as repo:
            await catalogue.refresh(repo)  # the streams send these with their presentation
            return await repo.awards_after(cursor, limit)

    async def head() -> int:
        async with uow.transaction() as repo:
            return await repo.last_cursor()

    return read_after, head


async def warn_untracked_rules(catalogue: Catalogue, settings: Settings) -> None:
    """Log a warning for each enabled achievement whose rule reads an event type that
    `track_event_types` does not track (so events never count for it). Creating such a rule
    is refused; this finds the ones made before the option was narrowed."""
    for a in (await catalogue.current()).achievements.values():
        untracked = [t for t in a.rule.event_types if not settings.tracks(t)]
        if a.enabled and untracked:
            log.warning(
                "achievement reads event types that are not tracked; events cannot earn it "
                "until they are added to track_event_types",
                achievement_id=a.id,
                event_types=untracked,
                track_event_types=settings.track_event_types,
            )


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    # A batch of events allocates tens of thousands of short-lived objects, almost none in
    # reference cycles: with the default threshold (700) the young generation was collected
    # dozens of times per batch. Long-lived objects are frozen (see RuleCache.get).
    gc.set_threshold(*GC_THRESHOLDS)
    app = await build(settings)
    host = settings.listen.rpartition(":")[0]
    if app.metrics_port is not None and settings.metrics_listen:
        metrics_host = settings.metrics_listen.rpartition(":")[0]
        log.info("metrics", listen=f"{metrics_host}:{app.metrics_port}", path="/metrics")
    if app.http_port is not None:
        http_host = settings.http_listen.rpartition(":")[0]
        log.info("http", listen=f"{http_host}:{app.http_port}")
    log.info(
        "serving",
        listen=f"{host}:{app.port}",
        database=settings.database_url.split("@")[-1],
        services=list(SERVICE_NAMES),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down", grace_seconds=settings.shutdown_grace_seconds)
    await app.stop(settings.shutdown_grace_seconds)
    log.info("stopped")
