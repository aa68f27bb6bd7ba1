"""Prometheus metrics, one registry per server so several servers can share a process."""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
#: The `achievement_id` label value of every achievement beyond the first N seen.
OTHER = "_other"  # no achievement id starts with "_"


class Metrics:
    def __init__(self, *, max_achievement_labels: int = 100) -> None:
        self.max_achievement_labels = max_achievement_labels
        self._achievement_labels: set[str] = set()
        r = self.registry = CollectorRegistry()
        self.rpc_requests = Counter(
            "accolade_rpc_requests",
            "Finished RPCs by method and status code.",
            ["method", "code"],
            registry=r,
        )
        self.rpc_duration = Histogram(
            "accolade_rpc_duration_seconds",
            "RPC latency by method.",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.events = Counter(
            "accolade_events",
            "Events received, by outcome: tracked, duplicate, ignored "
            "(type not in track_event_types) or invalid.",
            ["outcome"],
            registry=r,
        )
        self.awards = Counter(
            "accolade_awards",
            "Award log entries appended, by achievement (the first "
            "metrics_max_achievement_labels seen, then _other), source and kind.",
            ["achievement_id", "source", "kind"],
            registry=r,
        )
        self.condition_errors = Counter(
            "accolade_condition_errors",
            "Rule conditions that failed on an event (no match), by achievement (bounded "
            "like accolade_awards_total).",
            ["achievement_id"],
            registry=r,
        )
        self.definitions_broken = Gauge(
            "accolade_definitions_broken",
            "Enabled stored definitions this server cannot compile, skipped on load.",
            registry=r,
        )
        self.open_streams = Gauge(
            "accolade_open_streams", "WatchAwards streams open now.", registry=r
        )
        self.stream_catch_ups = Counter(
            "accolade_stream_catch_ups",
            "Times a slow stream was switched to catch-up reads.",
            registry=r,
        )
        self.batch_size = Histogram(
            "accolade_batch_events",
            "Events per write transaction (micro-batch size).",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_wait = Histogram(
            "accolade_batch_wait_seconds",
            "Time an event waited for its micro-batch to start.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.db_acquire = Histogram(
            "accolade_db_acquire_seconds",
            "Time to get a pooled connection and begin.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.deliveries = Counter(
            "accolade_deliveries",
            "Webhook/email delivery attempts by sink and result.",
            ["sink", "result"],
            registry=r,
        )
        self._http: Any = None

    def achievement_label(self, achievement_id: str) -> str:
        """The label value for an achievement: its id for the first
        `max_achievement_labels` ids seen (per process), `_other` for the rest, so the
        number of time series stays bounded however many achievements are defined."""
        labels = self._achievement_labels
        if achievement_id in labels:
            return achievement_id
        if len(labels) < self.max_achievement_labels:
            labels.add(achievement_id)
            return achievement_id
        return OTHER

    def serve(self, listen: str) -> int:
        """Expose /metrics over HTTP on `host:port` (port 0 picks one); returns the port."""
        host, _, port = listen.rpartition(":")
        server, _thread = start_http_server(
            int(port), addr=host.strip("[]"), registry=self.registry
        )
        self._http = server
        return int(server.server_port)

    def close(self) -> None:
        if self._http is not None:
            threading.Thread(target=self._http.shutdown, daemon=True).start()
            self._http.server_close()
            self._http = None
