"""The Leaderboards service over Connect (JSON or binary over HTTP), like the others in
`http/connect.py`: the same per-call pipeline, scope table and message limit."""

from __future__ import annotations

from typing import cast

from connectrpc.compat import google_protobuf_binary_codec
from starlette.types import ASGIApp

from accolade.v1 import leaderboards_pb2
from accolade_server.auth.guard import Guard
from accolade_server.http.connect import ConnectService, _with_length
from accolade_server.http.protojson import StrictJSONCodec
from accolade_server.http.v1.leaderboards_connect import (
    Leaderboards,
    LeaderboardsASGIApplication,
)
from accolade_server.metrics import Metrics
from accolade_server.rpc.leaderboards import LeaderboardsServicer


def leaderboards_app(
    servicer: LeaderboardsServicer,
    *,
    metrics: Metrics | None,
    guard: Guard | None,
    max_message_bytes: int,
) -> tuple[str, ASGIApp]:
    service = ConnectService(
        servicer, leaderboards_pb2.DESCRIPTOR.services_by_name["Leaderboards"], metrics, guard
    )
    app = LeaderboardsASGIApplication(
        cast(Leaderboards, service),
        read_max_bytes=max_message_bytes,
        codecs=[google_protobuf_binary_codec(), StrictJSONCodec()],
    )
    return app.path, _with_length(cast(ASGIApp, app))
