"""What the sync and async clients share: connection settings and request building."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import struct_pb2, timestamp_pb2

from accolade import __version__, definitions
from accolade._enums import parse_enum
from accolade.v1 import admin_pb2, backfills_pb2, tracker_pb2, types_pb2

log = logging.getLogger("accolade")

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TIMEOUT = 10.0
START_CURSOR_HEADER = "accolade-start-cursor"

PEM = bytes | str | os.PathLike[str]
AchievementLike = types_pb2.Achievement | Mapping[str, Any]
AchievementSource = str | os.PathLike[str] | Iterable[AchievementLike]


def _pem(value: PEM | None) -> bytes | None:
    """PEM bytes as given, or read from a file path."""
    if value is None or isinstance(value, bytes):
        return value
    return Path(value).read_bytes()


@dataclass(frozen=True, slots=True)
class TLS:
    """TLS settings; pass ``tls=True`` for the system's trust roots and no client certificate.

    Each certificate or key is PEM bytes or a file path. Give `certificate_chain` and
    `private_key` for mutual TLS. `server_name` overrides the name checked against the server
    certificate (for a certificate issued to another name than the target's host).
    """

    root_certificates: PEM | None = None
    certificate_chain: PEM | None = None
    private_key: PEM | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("TLS: certificate_chain and private_key go together (mutual TLS)")

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=_pem(self.root_certificates),
            private_key=_pem(self.private_key),
            certificate_chain=_pem(self.certificate_chain),
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """Resolved target, credentials, call metadata and channel options."""

    target: str
    credentials: grpc.ChannelCredentials | None
    metadata: tuple[tuple[str, str], ...]
    options: tuple[tuple[str, Any], ...]


def connection(target: str | None, api_key: str | None, tls: bool | TLS | None) -> Connection:
    target = target or os.environ.get("ACCOLADE_TARGET") or DEFAULT_TARGET
    api_key = api_key if api_key is not None else os.environ.get("ACCOLADE_API_KEY")
    options: list[tuple[str, Any]] = [
        ("grpc.primary_user_agent", f"accolade-python/{__version__}"),
        # Keep idle watch streams alive through NATs and proxies; the server accepts a
        # ping every 20 s at most.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
    ]
    credentials = None
    if tls:
        settings = tls if isinstance(tls, TLS) else TLS()
        credentials = settings.credentials()
        if settings.server_name:
            options.append(("grpc.ssl_target_name_override", settings.server_name))
    metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
    return Connection(target, credentials, metadata, tuple(options))


def _struct(properties: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    try:
        struct.update(properties)
    except (ValueError, TypeError) as exc:
        raise TypeError(
            f"properties must be JSON-like (str, number, bool, None, list, dict): {exc}"
        ) from exc
    return struct


def new_event_id() -> str:
    """A random idempotency key; keep it to retry the same event later."""
    return uuid.uuid4().hex


def track_request(
    type: str,
    user_id: str,
    *,
    event_id: str | None,
    occurred_at: datetime | None,
    properties: Mapping[str, Any] | None,
    extra: Mapping[str, Any],
    time_zone: str | None = None,
) -> tracker_pb2.TrackEventRequest:
    merged = {**(properties or {}), **extra}
    request = tracker_pb2.TrackEventRequest(
        event_id=event_id or new_event_id(),
        user_id=user_id,
        type=type,
        properties=_struct(merged) if merged else None,
        time_zone=time_zone or "",
    )
    if occurred_at is not None:
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(occurred_at)
        request.occurred_at.CopyFrom(stamp)
    return request


def event_request(
    event: tracker_pb2.TrackEventRequest | Mapping[str, Any],
) -> tracker_pb2.TrackEventRequest:
    """A batch entry: a request message, or a mapping with the `track_event` arguments."""
    if isinstance(event, tracker_pb2.TrackEventRequest):
        if event.event_id:
            return event
        copy = tracker_pb2.TrackEventRequest()
        copy.CopyFrom(event)
        copy.event_id = new_event_id()
        return copy
    fields = dict(event)
    try:
        type_, user_id = fields.pop("type"), fields.pop("user_id")
    except KeyError as exc:
        raise TypeError(f"each event needs 'type' and 'user_id'; missing {exc}") from None
    return track_request(
        str(type_),
        str(user_id),
        event_id=fields.pop("event_id", None),
        occurred_at=fields.pop("occurred_at", None),
        properties=fields.pop("properties", None),
        extra=fields,
        time_zone=fields.pop("time_zone", None),
    )


def achievement(value: AchievementLike) -> types_pb2.Achievement:
    """A message as is, or a mapping in the YAML file's native shape."""
    if isinstance(value, types_pb2.Achievement):
        return value
    parsed = definitions.parse({"achievements": [dict(value)]})[0]
    parsed.etag = str(value.get("etag") or "")  # output-only in files, a guard in updates
    return parsed


def definitions_of(source: AchievementSource) -> definitions.Definitions:
    """A definitions file (YAML or JSON, either shape) or an iterable of achievements."""
    if isinstance(source, str | os.PathLike):
        return definitions.load_file(source)
    return definitions.Definitions(achievements=[achievement(a) for a in source])


def source_name(source: AchievementSource) -> str:
    """What an apply records as the achievements' source: a file's name, else nothing."""
    return Path(source).name if isinstance(source, str | os.PathLike) else ""


def progress_policy(value: admin_pb2.ProgressPolicy.ValueType | str | None) -> Any:
    if value is None:
        return admin_pb2.PROGRESS_POLICY_UNSPECIFIED
    return parse_enum(admin_pb2.ProgressPolicy, value, what="a progress policy")


def backfill_mode(value: backfills_pb2.BackfillMode.ValueType | str | None) -> Any:
    if value is None:
        return backfills_pb2.BACKFILL_MODE_UNSPECIFIED
    return parse_enum(backfills_pb2.BackfillMode, value, what="a backfill mode")


def event_type(
    name: str, properties: Mapping[str, admin_pb2.PropertyType.ValueType | str]
) -> admin_pb2.EventType:
    shape = admin_pb2.EventType(name=name)
    for path, kind in properties.items():
        shape.properties.add(path=path, declared_type=parse_enum(admin_pb2.PropertyType, kind))
    return shape


def log_warnings(warnings: Iterable[str]) -> None:
    """Warnings the server returned with a definition (its rule may never fire)."""
    for warning in warnings:
        log.warning("%s", warning)


def start_cursor(metadata: Iterable[tuple[str, str | bytes]] | None) -> int | None:
    for key, value in metadata or ():
        if key == START_CURSOR_HEADER:
            try:
                return int(value)
            except ValueError:
                return None
    return None
