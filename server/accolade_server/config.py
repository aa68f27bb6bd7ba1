"""Settings: environment variables `ACCOLADE_<OPTION>` and an optional YAML file.

Precedence: keyword arguments > environment > YAML file (`ACCOLADE_CONFIG_FILE`) > defaults.
"""

from __future__ import annotations

import os
import re
from itertools import pairwise
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///accolade.db"


class EmailTemplate(BaseModel):
    """`str.format` templates; fields: user_id, achievement_id, title, description, tier,
    points, revoked."""

    subject: str
    body: str

    @model_validator(mode="after")
    def _renders(self) -> EmailTemplate:
        sample = {
            "user_id": "u",
            "achievement_id": "a",
            "title": "t",
            "description": "d",
            "tier": "",
            "tier_suffix": "",
            "points": 0,
        }
        for name in ("subject", "body"):
            try:
                getattr(self, name).format(**sample)
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(
                    f"{name} template: {exc!r}; fields: {', '.join(sorted(sample))}"
                ) from exc
        return self


DEFAULT_LEVEL_EMAIL = EmailTemplate(
    subject="You reached {title}!",
    body="Congratulations, you reached the level {title}.\n",
)


#: The OTLP transports of `otel_exporter_otlp_protocol` (http/json has no Python exporter).
OTLP_PROTOCOLS = ("grpc", "http/protobuf")


class PointLevel(BaseModel):
    """A level of lifetime points (option `point_levels`)."""

    name: str = Field(description="Shown as the level, and as the LEVEL entry's tier.")
    threshold: int = Field(ge=0, description="Lifetime points at which the level is reached.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}", value):
            raise ValueError(
                "must be 1-64 letters, digits, spaces, '_', '.' or '-', starting with a letter "
                "or digit"
            )
        return value


DEFAULT_EMAIL = EmailTemplate(
    subject="You earned {title}{tier_suffix}!",
    body="Congratulations, you earned {title}{tier_suffix} ({points} points).\n\n{description}\n",
)


class Settings(BaseSettings):
    """Every option of the server. README.md has the same table for users."""

    model_config = SettingsConfigDict(env_prefix="ACCOLADE_", extra="forbid", frozen=True)

    # The six options of the original specification.
    enable_achievements: bool = Field(
        True, description="Award achievements. When false, events still count but award nothing."
    )
    badge_level_threshold: list[float] = Field(
        [100, 250, 500],
        description="Tier thresholds (bronze, silver, gold, …) for achievements asking for levels.",
    )
    track_event_types: list[str] = Field(
        ["login", "purchase"], description='Event types that are tracked; ["*"] tracks all.'
    )
    notification_type: Literal["in-app", "webhook", "email"] = Field(
        "in-app", description="How awards are delivered."
    )
    points_per_badge: int = Field(
        0, ge=0, description="Points for an award whose achievement and tier set none."
    )
    api_access: Literal["disabled", "enabled"] = Field(
        "disabled", description="Whether third-party API keys are accepted."
    )

    # Points and levels (see service/points.py).
    point_levels: list[PointLevel] = Field(
        [],
        description="Levels of lifetime points, e.g. [{name: Novice, threshold: 0}, "
        "{name: Regular, threshold: 100}]; thresholds strictly increasing; empty: no levels.",
    )

    # Operational options.
    listen: str = Field("127.0.0.1:50051", description="host:port the gRPC server listens on.")
    http_listen: str = Field(
        "127.0.0.1:8080",
        description="host:port of the HTTP listener (Connect JSON API, pages); empty: off.",
    )
    http_cors_origins: list[str] = Field(
        [],
        description='Origins (scheme://host[:port]) whose pages may call the HTTP API; ["*"]: any.',
    )
    public_profiles: bool = Field(
        False, description="Serve profile pages and badge pictures to anyone, without a key."
    )
    private_profile_users: list[str] = Field(
        [], description="User ids whose profile page and pictures are never served."
    )
    database_url: str = Field(DEFAULT_DATABASE_URL, description="SQLAlchemy URL of the database.")
    database_schema: str | None = Field(
        None, description="PostgreSQL schema to use (default: the server's search_path)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info")
    shutdown_grace_seconds: float = Field(
        10.0, gt=0, description="How long in-flight calls may run after SIGTERM."
    )

    # Access and limits.
    insecure: bool = Field(
        False, description="Accept unauthenticated calls from any address when no keys exist."
    )
    key_refresh_seconds: float = Field(5.0, gt=0, description="API key cache poll interval.")
    rate_limit_per_second: float = Field(
        1000.0, ge=0, description="Calls per second per API key (0: unlimited)."
    )
    rate_limit_burst: int = Field(2000, ge=1, description="Calls a key may burst above the rate.")
    max_streams_per_key: int = Field(100, ge=1, description="Open WatchAwards streams per key.")
    max_message_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest request message accepted."
    )
    max_properties_bytes: int = Field(
        16 * 1024, ge=64, description="Largest `properties` of one event (serialized)."
    )
    max_properties_depth: int = Field(8, ge=1, description="Deepest nesting in `properties`.")
    max_property_list_items: int = Field(
        256, ge=1, description="Longest list in `properties`; bounds CEL comprehension cost."
    )
    tls_cert_file: str | None = Field(None, description="PEM certificate chain: serve TLS.")
    tls_key_file: str | None = Field(None, description="PEM private key of tls_cert_file.")
    tls_client_ca_file: str | None = Field(
        None, description="PEM CA bundle: require client certificates it signed (mutual TLS)."
    )

    workers: int = Field(
        1, ge=1, le=64, description="Server processes sharing the port (SO_REUSEPORT)."
    )
    event_retention_days: float | None = Field(
        None, gt=0, description="Delete events older than this (progress is kept); unset: keep."
    )
    batch_max_events: int = Field(
        200, ge=1, le=1000, description="Most TrackEvent calls that share one transaction."
    )
    batch_max_wait_ms: float = Field(
        2.0, ge=0, description="Longest an event waits for batch-mates while others commit."
    )
    batch_concurrency: int = Field(
        2, ge=1, le=64, description="Write transactions in flight at once."
    )
    metrics_listen: str | None = Field(
        None, description="host:port of the Prometheus /metrics endpoint; unset: off."
    )
    metrics_max_achievement_labels: int = Field(
        100,
        ge=0,
        description="Distinct achievement_id label values per metric; the rest count as _other.",
    )
    award_poll_seconds: float = Field(
        2.0, gt=0, description="Safety poll of the award log for streams (NOTIFY is the fast path)."
    )

    # Delivery (notification_type = webhook / email) and admin alerts.
    webhook_urls: list[str] = Field(
        [], description="URLs that receive each award as a signed JSON POST (webhook)."
    )
    webhook_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key for the Accolade-Signature header."
    )
    webhook_timeout_seconds: float = Field(5.0, gt=0)
    delivery_initial_backoff_seconds: float = Field(
        1.0, gt=0, description="First retry delay of a failed delivery; doubles per attempt."
    )
    delivery_max_backoff_seconds: float = Field(300.0, gt=0)
    admin_webhook_urls: list[str] = Field(
        [], description="URLs that receive manual grants and revocations (admin alerts)."
    )
    smtp_host: str = Field("localhost")
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_tls: Literal["none", "starttls", "ssl"] = Field("none")
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    email_sender: str = Field("accolade@localhost")
    email_to: str = Field(
        "{user_id}", description="Recipient address; {user_id} is replaced by the user id."
    )
    email_templates: dict[str, EmailTemplate] = Field(
        {},
        description='Per achievement id (or "default"; "level": levels reached): subject and body.',
    )

    # Analytics export (Google Analytics 4) and tracing (OpenTelemetry): see README.
    ga4_measurement_id: str = Field(
        "",
        description="GA4 measurement id (G-…): send award-log entries to GA4 as events.",
    )
    ga4_api_secret: SecretStr | None = Field(
        None, description="Measurement Protocol API secret of the GA4 data stream."
    )
    ga4_endpoint: str = Field(
        "https://www.google-analytics.com",
        description="Base URL for /mp/collect (point it at a collector or proxy).",
    )
    ga4_send_user_id: bool = Field(
        True,
        description="Send Accolade's user id as GA4 user_id (off when user ids are personal "
        "data such as e-mail addresses); client_id is always a pseudonymous hash.",
    )
    otel_exporter_otlp_endpoint: str = Field(
        "",
        description="OTLP endpoint for traces (gRPC: e.g. http://collector:4317; "
        "http/protobuf: the base URL, e.g. http://collector:4318, to which /v1/traces is "
        "added); empty: tracing off. Also read from OTEL_EXPORTER_OTLP_ENDPOINT.",
    )
    otel_exporter_otlp_protocol: Literal["grpc", "http/protobuf"] = Field(
        "grpc",
        description="OTLP transport for traces: grpc or http/protobuf. Also read from "
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, then OTEL_EXPORTER_OTLP_PROTOCOL.",
    )

    @model_validator(mode="before")
    @classmethod
    def _standard_otel_variables(cls, data: Any) -> Any:
        """OTEL_EXPORTER_OTLP_ENDPOINT and the protocol variables, which every OpenTelemetry
        SDK reads, count when the option itself is not given; a protocol this server does
        not speak stops it at startup (rather than exporting nothing)."""
        if not isinstance(data, dict):
            return data
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        if endpoint and "otel_exporter_otlp_endpoint" not in data:
            data = {**data, "otel_exporter_otlp_endpoint": endpoint}
        for var in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
            protocol = os.environ.get(var, "").strip()
            if not protocol or "otel_exporter_otlp_protocol" in data:
                continue
            if protocol not in OTLP_PROTOCOLS:
                raise ValueError(
                    f"{var}={protocol!r} is not an OTLP protocol this server exports with; "
                    f"use one of {', '.join(OTLP_PROTOCOLS)}"
                )
            data = {**data, "otel_exporter_otlp_protocol": protocol}
        return data

    # Leaderboards.
    leaderboard_retention_periods: int = Field(
        12,
        ge=1,
        le=10_000,
        description="Past periods a period leaderboard keeps readable besides the current one.",
    )

    # Analytics (Insights service).
    analytics_active_days: int = Field(
        30,
        ge=0,
        le=3660,
        description="Active users (rarity's denominator): users with an event in the last N "
        "UTC days, today included; 0: every user who ever sent an event.",
    )

    # -- backfills (service/backfills.py) --
    backfill_chunk_users: int = Field(
        100,
        ge=1,
        le=10_000,
        description="Users a backfill reads ahead and recomputes at a time, before it "
        "locks them (larger chunks read faster).",
    )
    backfill_lock_users: int = Field(
        10,
        ge=1,
        le=10_000,
        description="Users a backfill writes per transaction, their rows locked until it "
        "commits: a live event of one of them waits for that (smaller slices interfere "
        "less with live events).",
    )
    backfill_lease_seconds: float = Field(
        30.0,
        gt=0,
        description="How long a replica's claim on a backfill lasts without renewal; a "
        "replica that dies is replaced this long after its last chunk.",
    )
    backfill_pause_seconds: float = Field(
        0.0,
        ge=0,
        description="Pause between a backfill's chunks, to leave the database to live traffic.",
    )
    backfill_live_yield: float = Field(
        5.0,
        ge=0,
        le=100,
        description="While live events arrive, a backfill sleeps this many times as long as "
        "each user's recompute took, so that live traffic keeps most of the server's time "
        "(5: at least five sixths); 0: backfills never give way.",
    )
    backfill_poll_seconds: float = Field(
        2.0, gt=0, description="How often a server looks for queued backfills."
    )
    backfill_preview_max_seconds: float = Field(
        60.0, gt=0, description="Longest a PreviewAchievement call scans (also its deadline)."
    )

    @field_validator("badge_level_threshold")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if not value:
            raise ValueError("needs at least one threshold")
        if any(v <= 0 for v in value) or any(b <= a for a, b in pairwise(value)):
            raise ValueError("thresholds must be positive and strictly increasing")
        return value

    @field_validator("point_levels")
    @classmethod
    def _levels(cls, value: list[PointLevel]) -> list[PointLevel]:
        for i, (a, b) in enumerate(pairwise(value), start=1):
            if b.threshold <= a.threshold:
                raise ValueError(
                    f"thresholds must be strictly increasing: level {i} ({b.name!r}, "
                    f"{b.threshold}) is not above level {i - 1} ({a.name!r}, {a.threshold})"
                )
        names = [level.name for level in value]
        if len(set(names)) != len(names):
            raise ValueError("level names must be unique")
        return value

    @field_validator("track_event_types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError('list at least one event type, or ["*"] for all')
        return value

    @field_validator("listen", "http_listen")
    @classmethod
    def _listen(cls, value: str, info: ValidationInfo) -> str:
        if info.field_name == "http_listen" and value == "":
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must be host:port, e.g. 127.0.0.1:50051 or [::]:50051")
        return value

    @field_validator("http_cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not re.fullmatch(r"https?://[^/\s?#]+", origin):
                raise ValueError(
                    f"{origin!r} is not an origin: scheme://host[:port] with no path, or *"
                )
        return value

    @field_validator("database_url")
    @classmethod
    def _url(cls, value: str) -> str:
        # Accept the plain driver-less spellings people paste from elsewhere.
        for plain, full in (
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if value.startswith(plain):
                value = full + value[len(plain) :]
        if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("must be a postgresql:// or sqlite:// URL")
        return value

    @field_validator("webhook_urls", "admin_webhook_urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return value

    @model_validator(mode="after")
    def _delivery_configured(self) -> Settings:
        if self.notification_type == "webhook" and not self.webhook_urls:
            raise ValueError("notification_type 'webhook' needs webhook_urls")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ValueError("tls_client_ca_file (mutual TLS) needs tls_cert_file/tls_key_file")
        if (self.webhook_urls or self.admin_webhook_urls) and self.webhook_secret is None:
            raise ValueError("webhook_urls/admin_webhook_urls need webhook_secret to sign with")
        if self.ga4_measurement_id and self.ga4_api_secret is None:
            raise ValueError("ga4_measurement_id needs ga4_api_secret")
        if not self.ga4_endpoint.startswith(("http://", "https://")):
            raise ValueError("ga4_endpoint must be an http(s) URL")
        if self.otel_exporter_otlp_endpoint and not self.otel_exporter_otlp_endpoint.startswith(
            ("http://", "https://")
        ):
            raise ValueError("otel_exporter_otlp_endpoint must be an http(s) URL")
        return self

    def tracks(self, event_type: str) -> bool:
        return "*" in self.track_event_types or event_type in self.track_event_types

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("ACCOLADE_CONFIG_FILE")
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)
