"""OpenTelemetry traces, built only when configured.

On (`otel_exporter_otlp_endpoint` set, or a span processor passed to `app.build`): a tracer
provider of this server alone (the process-wide global one is left alone), with spans from
the maintained instrumentations — gRPC's aio server interceptor, the ASGI middleware around
the HTTP app (Connect calls, console, pictures) and SQLAlchemy's engine events — plus the
two spans no instrumentation knows: the micro-batch transaction (`accolade.batch`) and each
delivery attempt (`accolade.delivery`). Trace context comes in as W3C `traceparent` in gRPC
metadata or HTTP headers (the propagators of OTEL_PROPAGATORS, tracecontext by default).

Off: `build_tracing` returns None; no provider is created and nothing is wrapped (no
interceptor, no middleware, no engine listeners; the batcher and the delivery worker take
their `None` branch).

OTLP goes over gRPC or HTTP (`otel_exporter_otlp_protocol`, or OTEL_EXPORTER_OTLP_TRACES_PROTOCOL
/ OTEL_EXPORTER_OTLP_PROTOCOL: `grpc`, `http/protobuf`). The SDK reads the standard variables
itself: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
(service.name defaults to "accolade"), OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG,
OTEL_EXPORTER_OTLP_HEADERS / _TIMEOUT / _CERTIFICATE, OTEL_BSP_* and OTEL_PROPAGATORS.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Tracer

from accolade_server.config import Settings
from accolade_server.domain.model import AwardRecord

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from sqlalchemy.ext.asyncio import AsyncEngine
    from starlette.types import ASGIApp, Receive, Scope, Send

SCOPE = "accolade_server"
BATCH_SPAN = "accolade.batch"
DELIVERY_SPAN = "accolade.delivery"


@dataclass
class Tracing:
    provider: TracerProvider
    tracer: Tracer

    def __post_init__(self) -> None:
        self._roots = self.samples_roots()

    def grpc_interceptor(self) -> grpc.aio.ServerInterceptor:
        """The gRPC aio server interceptor; it goes first, so refused calls get spans too.

        When the sampler never samples a trace of its own (e.g. `parentbased_traceidratio`
        at 0), a call that carries no trace context cannot be recorded: it skips the
        instrumentation, whose per-call work was most of tracing's cost at a 0 % sampler."""
        from opentelemetry import propagate
        from opentelemetry.instrumentation.grpc import aio_server_interceptor

        interceptor = aio_server_interceptor(tracer_provider=self.provider)  # type: ignore[no-untyped-call]
        inner = cast("grpc.aio.ServerInterceptor", interceptor)
        if self.samples_roots():
            return inner
        return _WithTraceContextOnly(inner, frozenset(propagate.get_global_textmap().fields))

    def samples_roots(self) -> bool:
        """Whether the sampler can sample a trace that has no parent. Asked with trace id 0,
        the one every ratio sampler above 0 samples (it compares the id with its bound)."""
        from opentelemetry.sdk.trace.sampling import Decision

        result = self.provider.sampler.should_sample(None, 0, "probe")
        return result.decision is Decision.RECORD_AND_SAMPLE

    def asgi(self, app: ASGIApp) -> ASGIApp:
        """The ASGI app wrapped in OpenTelemetry's middleware (one server span a request)."""
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        wrapped: ASGIApp = OpenTelemetryMiddleware(
            app,
            tracer_provider=self.provider,
            default_span_details=http_span_details,
            exclude_spans=["receive", "send"],
        )
        if self._roots:
            return wrapped
        from opentelemetry import propagate

        fields = frozenset(f.encode() for f in propagate.get_global_textmap().fields)

        async def with_trace_context_only(scope: Scope, receive: Receive, send: Send) -> None:
            """As for gRPC calls: a request without trace context cannot be recorded."""
            headers = scope.get("headers") or ()
            if any(key in fields for key, _ in headers):
                await wrapped(scope, receive, send)
            else:
                await app(scope, receive, send)

        return with_trace_context_only

    def instrument_engine(self, engine: AsyncEngine) -> None:
        """A span per database statement, through SQLAlchemy's instrumentation on the async
        engine's sync engine, for statements run inside a recorded span (see
        `_StatementTracer`). Its `EngineTracer` (what `SQLAlchemyInstrumentor().instrument(
        engine=…)` returns) is used directly: the instrumentor is a process-wide singleton
        that also patches `create_engine` and `Engine.connect` for every engine, and a
        second `instrument()` (a second app in one process) does nothing."""
        from opentelemetry.instrumentation.sqlalchemy.version import __version__
        from opentelemetry.metrics import NoOpMeterProvider

        tracer = trace.get_tracer(
            "opentelemetry.instrumentation.sqlalchemy", __version__, self.provider
        )
        meter = NoOpMeterProvider().get_meter("opentelemetry.instrumentation.sqlalchemy")
        usage = meter.create_up_down_counter("db.client.connections.usage")
        _statement_tracer()(tracer, engine.sync_engine, usage)

    def caller(self) -> Span:
        """The span of the call submitting an item to the micro-batcher."""
        return trace.get_current_span()

    @contextlib.contextmanager
    def batch(self, callers: Sequence[Span | None]) -> Iterator[None]:
        """The batch transaction's span: linked to each call's span and each call's span
        linked back to it. Its parent is the first sampled call (so a sampled call's trace
        holds its batch); without one it is a root for the sampler to decide."""
        spans = [c for c in callers if c is not None]
        if not self._roots and not any(c.is_recording() for c in spans):
            yield  # nothing would be recorded: no parent is sampled, and no root would be
            return
        contexts = [c.get_span_context() for c in spans]
        parent = next((c for c in spans if c.get_span_context().trace_flags.sampled), None)
        ctx = trace.set_span_in_context(parent) if parent else otel_context.Context()
        with self.tracer.start_as_current_span(
            BATCH_SPAN,
            context=ctx,
            links=[Link(sc) for sc in contexts if sc.is_valid],
            attributes={"accolade.batch.size": len(callers)},
        ) as span:
            if span.is_recording():
                mine = span.get_span_context()
                for caller in spans:
                    if caller.is_recording():
                        caller.add_link(mine)
            yield

    async def shutdown(self) -> None:
        """Flush what is queued and stop the exporter (blocking calls: off the loop)."""
        await asyncio.to_thread(self.provider.shutdown)


class _WithTraceContextOnly(grpc.aio.ServerInterceptor):
    """A gRPC interceptor that hands only calls carrying trace context (any of the
    propagators' `fields`, e.g. `traceparent`) to the tracing interceptor."""

    def __init__(self, inner: grpc.aio.ServerInterceptor, fields: frozenset[str]) -> None:
        self._inner = inner
        self._fields = fields

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        metadata = details.invocation_metadata or ()
        if any(key in self._fields for key, _ in metadata):
            return await self._inner.intercept_service(continuation, details)
        return await continuation(details)


@functools.cache
def _statement_tracer() -> type[Any]:
    """SQLAlchemy's `EngineTracer`, skipping statements outside a recorded span.

    A statement whose call or batch is not sampled would only make a span to drop (the
    instrumentation parses the URL and the statement first: most of tracing's cost at a 0 %
    sampler), and the background polls' statements would each start a trace of their own."""
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    class StatementTracer(EngineTracer):
        def _before_cur_exec(self, conn: Any, cursor: Any, statement: Any, *rest: Any) -> Any:
            if not trace.get_current_span().is_recording():
                return statement, rest[0]
            return super()._before_cur_exec(conn, cursor, statement, *rest)  # type: ignore[no-untyped-call]

    return StatementTracer


def build_tracing(
    settings: Settings, span_processor: SpanProcessor | None = None
) -> Tracing | None:
    """The server's tracing, or None when it is off (see the module docstring)."""
    if not settings.otel_exporter_otlp_endpoint and span_processor is None:
        return None
    from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider

    detected = OTELResourceDetector().detect().attributes
    defaults = {} if SERVICE_NAME in detected else {SERVICE_NAME: "accolade"}
    provider = TracerProvider(resource=Resource.create(defaults))
    if settings.otel_exporter_otlp_endpoint:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(_exporter(settings)))
    if span_processor is not None:
        provider.add_span_processor(span_processor)
    return Tracing(provider, provider.get_tracer(SCOPE))


def _exporter(settings: Settings) -> SpanExporter:
    """The OTLP exporter of `otel_exporter_otlp_protocol`. Over HTTP the endpoint is a base
    URL and traces go to its `/v1/traces`, as for OTEL_EXPORTER_OTLP_ENDPOINT in the spec."""
    endpoint = settings.otel_exporter_otlp_endpoint
    if settings.otel_exporter_otlp_protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint)


def traced_asgi(tracing: Tracing | None, app: ASGIApp) -> ASGIApp:
    """`app` in the tracing middleware when tracing is on; `app` itself when off."""
    return app if tracing is None else tracing.asgi(app)


def http_span_details(scope: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """Connect calls are named like gRPC spans (`accolade.v1.Service/Method`); other paths
    carry ids (users, achievements), so their spans are named by the method alone."""
    path: str = scope.get("path", "")
    method: str = scope.get("method", "") or "HTTP"
    if path.startswith("/accolade.v1."):
        service, _, rpc = path[1:].partition("/")
        return f"{service}/{rpc}", {
            "rpc.system": "connect_rpc",
            "rpc.service": service,
            "rpc.method": rpc,
        }
    return method, {}


def attempt_span(
    tracing: Tracing | None, sink: str, records: Sequence[AwardRecord]
) -> AbstractContextManager[object]:
    """A span around one delivery attempt (failures are recorded on it); nothing when off."""
    if tracing is None:
        return contextlib.nullcontext()
    return tracing.tracer.start_as_current_span(
        DELIVERY_SPAN,
        kind=SpanKind.CLIENT,
        attributes={
            "accolade.sink": sink,
            "accolade.delivery.entries": len(records),
            "accolade.delivery.first_cursor": records[0].cursor,
            "accolade.delivery.last_cursor": records[-1].cursor,
        },
    )
