"""OpenTelemetry traces: server spans for gRPC and Connect calls joined to the caller's trace,
the batch transaction linked to its calls, database statements, delivery attempts; and
nothing at all when tracing is off."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from accolade.v1 import admin_pb2_grpc, tracker_pb2_grpc
from accolade.v1 import tracker_pb2 as tpb
from accolade_server import app
from accolade_server.tracing import BATCH_SPAN, DELIVERY_SPAN
from tests.conftest import Database, Running, start_server, stop_server
from tests.e2e.test_auth import make_key
from tests.e2e.test_delivery import earn_first
from tests.ga4 import Collector
from tests.helpers import expect_error

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
TRACK = "accolade.v1.BadgeTracker/TrackEvent"


async def start_traced(db: Database, exporter: InMemorySpanExporter, **overrides: Any) -> Running:
    built = await app.build(db.settings(**overrides), span_processor=SimpleSpanProcessor(exporter))
    target = f"127.0.0.1:{built.port}"
    channel = grpc.aio.insecure_channel(target)
    return Running(
        app=built,
        target=target,
        channel=channel,
        admin=admin_pb2_grpc.AchievementAdminStub(channel),
        tracker=tracker_pb2_grpc.BadgeTrackerStub(channel),
        db=db,
    )


@pytest.fixture
def ga4_collector() -> Iterator[Collector]:
    collector = Collector()
    try:
        yield collector
    finally:
        collector.stop()


@pytest.fixture
async def traced(db: Database) -> AsyncIterator[tuple[Running, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    running = await start_traced(db, exporter)
    try:
        yield running, exporter
    finally:
        await stop_server(running)


async def span_where(
    exporter: InMemorySpanExporter, predicate: Callable[[ReadableSpan], bool]
) -> ReadableSpan:
    """The first finished span matching `predicate`, awaited (spans end after replies)."""
    for _ in range(500):
        for span in exporter.get_finished_spans():
            if predicate(span):
                return span
        await asyncio.sleep(0.01)
    names = sorted({s.name for s in exporter.get_finished_spans()})
    raise AssertionError(f"no such span among {names}")


def trace_hex(span: ReadableSpan) -> str:
    assert span.context is not None
    return trace.format_trace_id(span.context.trace_id)


def linked(span: ReadableSpan, to: ReadableSpan) -> bool:
    assert to.context is not None
    return any(link.context.span_id == to.context.span_id for link in span.links)


def statements(spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if s.attributes and "db.statement" in s.attributes]


async def test_a_grpc_call_joins_the_callers_trace_and_links_to_its_batch(
    traced: tuple[Running, InMemorySpanExporter],
) -> None:
    running, exporter = traced
    reply = await running.tracker.TrackEvent(
        tpb.TrackEventRequest(event_id="e1", user_id="u1", type="login"),
        metadata=(("traceparent", TRACEPARENT),),
    )
    assert reply.tracked
    call = await span_where(exporter, lambda s: s.name == f"/{TRACK}")
    assert call.kind is trace.SpanKind.SERVER
    assert trace_hex(call) == TRACE_ID
    assert call.parent is not None and trace.format_span_id(call.parent.span_id) == PARENT_ID
    batch = await span_where(exporter, lambda s: s.name == BATCH_SPAN)
    assert batch.attributes is not None and batch.attributes["accolade.batch.size"] == 1
    assert linked(batch, call) and linked(call, batch)
    # The only sampled call of the batch is its parent: the batch shows in the call's trace.
    assert batch.parent is not None and call.context is not None
    assert batch.parent.span_id == call.context.span_id
    # The transaction's statements are spans under the batch span.
    assert batch.context is not None
    inside = [
        s
        for s in statements(exporter.get_finished_spans())
        if s.parent is not None and s.parent.span_id == batch.context.span_id
    ]
    assert inside, "no statement spans under the batch"
    assert all(s.kind is trace.SpanKind.CLIENT for s in inside)


async def test_concurrent_calls_share_a_batch_span_linked_to_each(db: Database) -> None:
    exporter = InMemorySpanExporter()
    # A long wait so that the calls queue up behind the first transaction.
    running = await start_traced(db, exporter, batch_concurrency=1, batch_max_wait_ms=200)
    try:
        await asyncio.gather(
            *(
                running.tracker.TrackEvent(
                    tpb.TrackEventRequest(event_id=f"e{i}", user_id=f"u{i}", type="login")
                )
                for i in range(6)
            )
        )
        calls = [s for s in exporter.get_finished_spans() if s.name == f"/{TRACK}"]
        assert len(calls) == 6
        batches = [s for s in exporter.get_finished_spans() if s.name == BATCH_SPAN]
        sizes = [int(str(b.attributes["accolade.batch.size"])) for b in batches if b.attributes]
        assert sum(sizes) == 6 and max(sizes) > 1
        for call in calls:
            mine = [b for b in batches if linked(b, call)]
            assert len(mine) == 1 and linked(call, mine[0])
    finally:
        await stop_server(running)


async def test_a_connect_call_joins_the_callers_trace(
    traced: tuple[Running, InMemorySpanExporter],
) -> None:
    running, exporter = traced
    async with httpx.AsyncClient() as http:
        reply = await http.post(
            f"{running.http_url}/{TRACK}",
            json={"eventId": "e1", "userId": "u1", "type": "login"},
            headers={"traceparent": TRACEPARENT},
        )
    assert reply.status_code == 200, reply.text
    call = await span_where(exporter, lambda s: s.name == TRACK)
    assert call.kind is trace.SpanKind.SERVER
    assert trace_hex(call) == TRACE_ID
    assert call.attributes is not None and call.attributes["rpc.system"] == "connect_rpc"
    batch = await span_where(exporter, lambda s: s.name == BATCH_SPAN)
    assert linked(batch, call) and linked(call, batch)


async def test_a_refused_call_is_traced_with_its_status(db: Database) -> None:
    await make_key(db, "track")  # keys exist: calls without one are refused
    exporter = InMemorySpanExporter()
    running = await start_traced(db, exporter)
    try:
        await expect_error(
            running.tracker.TrackEvent(
                tpb.TrackEventRequest(event_id="e1", user_id="u1", type="login"),
                metadata=(("traceparent", TRACEPARENT),),
            ),
            grpc.StatusCode.UNAUTHENTICATED,
        )
        call = await span_where(exporter, lambda s: s.name == f"/{TRACK}")
        assert trace_hex(call) == TRACE_ID
        assert call.attributes is not None
        assert call.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]
        assert not any(s.name == BATCH_SPAN for s in exporter.get_finished_spans())
    finally:
        await stop_server(running)


async def test_tracing_off_installs_nothing(db: Database) -> None:
    running = await start_server(db)
    try:
        await running.tracker.TrackEvent(
            tpb.TrackEventRequest(event_id="e1", user_id="u1", type="login"),
            metadata=(("traceparent", TRACEPARENT),),
        )
        built = running.app
        assert built.tracing is None
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        assert built.http is not None and not isinstance(built.http.app, OpenTelemetryMiddleware)
        assert not built.engine.sync_engine.dispatch.before_cursor_execute
    finally:
        await stop_server(running)


async def test_a_delivery_attempt_is_a_span(db: Database, ga4_collector: Collector) -> None:
    exporter = InMemorySpanExporter()
    running = await start_traced(db, exporter, **ga4_collector.settings())
    try:
        await earn_first(running)
        attempt = await span_where(exporter, lambda s: s.name == DELIVERY_SPAN)
    finally:
        await stop_server(running)
    assert attempt.attributes is not None
    assert attempt.attributes["accolade.sink"] == "ga4:G-TEST123"
    assert attempt.attributes["accolade.delivery.entries"] == 1
    assert attempt.status.is_ok


async def test_at_a_zero_sampler_only_calls_the_caller_sampled_are_traced(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    exporter = InMemorySpanExporter()
    running = await start_traced(db, exporter)
    try:
        await running.tracker.TrackEvent(
            tpb.TrackEventRequest(event_id="e1", user_id="u1", type="login")
        )
        await running.tracker.TrackEvent(
            tpb.TrackEventRequest(event_id="e2", user_id="u1", type="login"),
            metadata=(("traceparent", TRACEPARENT),),
        )
        await span_where(exporter, lambda s: s.name == BATCH_SPAN)
    finally:
        await stop_server(running)
    spans = exporter.get_finished_spans()
    # Everything recorded belongs to the sampled caller's trace: no statement of the
    # unsampled call, nor of the background polls, made a span.
    assert {trace_hex(s) for s in spans} == {TRACE_ID}
    assert [s.name for s in spans if s.name == f"/{TRACK}"] == [f"/{TRACK}"]
    assert statements(spans)


class OtlpHttpReceiver:
    """A local OTLP/HTTP endpoint (a real HTTP server in a thread) that decodes each
    `POST /v1/traces` as the protobuf ExportTraceServiceRequest of the OTLP spec."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        self.requests: list[tuple[str, str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                receiver.requests.append((self.path, self.headers["Content-Type"], request))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"

    def spans(self) -> list[tuple[str, str, Any]]:
        """(service.name, span name, span) of every span received."""
        out: list[tuple[str, str, Any]] = []
        for _, _, request in self.requests:
            for rs in request.resource_spans:
                attrs = {a.key: a.value.string_value for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    out.extend((attrs.get("service.name", ""), s.name, s) for s in ss.spans)
        return out

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def otlp_http() -> Iterator[OtlpHttpReceiver]:
    receiver = OtlpHttpReceiver()
    try:
        yield receiver
    finally:
        receiver.stop()


async def test_spans_go_out_over_otlp_http_when_the_standard_variable_asks(
    db: Database, otlp_http: OtlpHttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")  # the traces variable wins
    running = await start_server(db, otel_exporter_otlp_endpoint=otlp_http.endpoint)
    try:
        await running.tracker.TrackEvent(
            tpb.TrackEventRequest(event_id="e1", user_id="u1", type="purchase"),
            metadata=(("traceparent", TRACEPARENT),),
        )
    finally:
        await stop_server(running)  # flushes the batch span processor
    assert {(path, ctype) for path, ctype, _ in otlp_http.requests} == {
        ("/v1/traces", "application/x-protobuf")
    }
    spans = otlp_http.spans()
    [call] = [s for service, name, s in spans if name == f"/{TRACK}" and service == "accolade"]
    assert call.trace_id.hex() == TRACE_ID and call.parent_span_id.hex() == PARENT_ID
    assert BATCH_SPAN in {name for _, name, _ in spans}


def test_an_unknown_otlp_protocol_stops_the_server_at_startup(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(
        ValueError, match=r"OTEL_EXPORTER_OTLP_PROTOCOL='http/json' .*grpc, http/protobuf"
    ):
        db.settings(otel_exporter_otlp_endpoint="http://127.0.0.1:4318")
    with pytest.raises(ValueError, match="otel_exporter_otlp_protocol"):
        db.settings(otel_exporter_otlp_protocol="thrift")
