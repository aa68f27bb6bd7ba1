"""Settings: environment variables `ACCOLADE_<OPTION>` and an optional YAML file.

Precedence: keyword arguments > environment > YAML file (`ACCOLADE_CONFIG_FILE`) > defaults.
"""

from __future__ import annotations

import os
from itertools import pairwise
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///accolade.db"


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

    # Operational options.
    listen: str = Field("127.0.0.1:50051", description="host:port the gRPC server listens on.")
    database_url: str = Field(DEFAULT_DATABASE_URL, description="SQLAlchemy URL of the database.")
    database_schema: str | None = Field(
        None, description="PostgreSQL schema to use (default: the server's search_path)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info")
    shutdown_grace_seconds: float = Field(
        10.0, gt=0, description="How long in-flight calls may run after SIGTERM."
    )

    @field_validator("badge_level_threshold")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if not value:
            raise ValueError("needs at least one threshold")
        if any(v <= 0 for v in value) or any(b <= a for a, b in pairwise(value)):
            raise ValueError("thresholds must be positive and strictly increasing")
        return value

    @field_validator("track_event_types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError('list at least one event type, or ["*"] for all')
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must be host:port, e.g. 127.0.0.1:50051 or [::]:50051")
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
