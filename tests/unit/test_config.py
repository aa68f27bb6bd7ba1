"""Server settings: the spec's defaults, environment variables, a YAML file, URL spellings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from accolade_server.config import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read ACCOLADE_* variables; none from the caller's shell may leak in."""
    for name in list(os.environ):
        if name.upper().startswith("ACCOLADE_"):
            monkeypatch.delenv(name)


def test_the_six_spec_options_have_the_spec_defaults() -> None:
    settings = Settings()
    assert settings.enable_achievements is True
    assert settings.badge_level_threshold == [100, 250, 500]
    assert settings.track_event_types == ["login", "purchase"]
    assert settings.notification_type == "in-app"
    assert settings.points_per_badge == 0
    assert settings.api_access == "disabled"


def test_by_default_the_server_listens_locally_on_an_embedded_sqlite_file() -> None:
    settings = Settings()
    assert settings.listen == "127.0.0.1:50051"
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.database_url.removeprefix("sqlite+aiosqlite:///") not in ("", ":memory:")
    assert settings.is_sqlite


def test_environment_variables_override_every_spec_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCOLADE_ENABLE_ACHIEVEMENTS", "false")
    monkeypatch.setenv("ACCOLADE_BADGE_LEVEL_THRESHOLD", "[10, 20]")
    monkeypatch.setenv("ACCOLADE_TRACK_EVENT_TYPES", '["*"]')
    monkeypatch.setenv("ACCOLADE_NOTIFICATION_TYPE", "webhook")
    monkeypatch.setenv("ACCOLADE_WEBHOOK_URLS", '["https://hooks.example.test/badges"]')
    monkeypatch.setenv("ACCOLADE_WEBHOOK_SECRET", "s3cret")
    monkeypatch.setenv("ACCOLADE_POINTS_PER_BADGE", "15")
    monkeypatch.setenv("ACCOLADE_API_ACCESS", "enabled")
    monkeypatch.setenv("ACCOLADE_LISTEN", "0.0.0.0:6000")
    settings = Settings()
    assert settings.enable_achievements is False
    assert settings.badge_level_threshold == [10, 20]
    assert settings.track_event_types == ["*"]
    assert settings.tracks("anything_at_all")
    assert settings.notification_type == "webhook"
    assert settings.points_per_badge == 15
    assert settings.api_access == "enabled"
    assert settings.listen == "0.0.0.0:6000"


def test_only_listed_event_types_are_tracked_unless_star() -> None:
    settings = Settings(track_event_types=["login"])
    assert settings.tracks("login") and not settings.tracks("purchase")


def test_a_yaml_file_is_read_and_the_environment_beats_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "accolade.yaml"
    config.write_text(
        "points_per_badge: 7\n"
        "notification_type: email\n"
        "track_event_types: [signup, login]\n"
        "badge_level_threshold: [1, 2, 3]\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("ACCOLADE_CONFIG_FILE", str(config))
    from_file = Settings()
    assert from_file.points_per_badge == 7
    assert from_file.notification_type == "email"
    assert from_file.track_event_types == ["signup", "login"]
    assert from_file.badge_level_threshold == [1, 2, 3]

    monkeypatch.setenv("ACCOLADE_POINTS_PER_BADGE", "9")
    both = Settings()
    assert both.points_per_badge == 9  # environment beats the file
    assert both.notification_type == "email"  # the file still supplies the rest


def test_keyword_arguments_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCOLADE_POINTS_PER_BADGE", "9")
    assert Settings(points_per_badge=3).points_per_badge == 3


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@db:5432/accolade", "postgresql+asyncpg://u@db:5432/accolade"),
        ("postgres://u@db/accolade", "postgresql+asyncpg://u@db/accolade"),
        ("postgresql+asyncpg://u@db/accolade", "postgresql+asyncpg://u@db/accolade"),
        ("sqlite:///data/accolade.db", "sqlite+aiosqlite:///data/accolade.db"),
    ],
)
def test_driverless_database_urls_are_normalised_to_the_async_drivers(
    given: str, expected: str
) -> None:
    assert Settings(database_url=given).database_url == expected


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("badge_level_threshold", [500, 100]),
        ("badge_level_threshold", []),
        ("badge_level_threshold", [0, 10]),
        ("track_event_types", []),
        ("notification_type", "carrier-pigeon"),
        ("api_access", "maybe"),
        ("points_per_badge", -1),
        ("listen", "nonsense"),
        ("listen", "127.0.0.1:99999"),
        ("database_url", "mysql://u@db/accolade"),
        ("shutdown_grace_seconds", 0),
    ],
)
def test_an_invalid_value_is_refused_naming_the_option(option: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(**{option: value})
    assert [err["loc"][0] for err in info.value.errors()] == [option]


def test_an_unknown_option_is_refused() -> None:
    with pytest.raises(ValidationError, match="notification_typ"):
        Settings(notification_typ="email")  # type: ignore[call-arg]


def test_webhook_delivery_without_urls_or_secret_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACCOLADE_NOTIFICATION_TYPE", "webhook")
    with pytest.raises(ValidationError, match="needs webhook_urls"):
        Settings()
    monkeypatch.setenv("ACCOLADE_WEBHOOK_URLS", '["https://hooks.example.test/badges"]')
    with pytest.raises(ValidationError, match="need webhook_secret"):
        Settings()


def test_the_http_face_is_closed_by_default_and_cors_origins_are_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings()
    assert settings.http_cors_origins == [] and settings.public_profiles is False
    assert settings.private_profile_users == []
    monkeypatch.setenv("ACCOLADE_HTTP_CORS_ORIGINS", '["https://app.example:8443", "*"]')
    assert Settings().http_cors_origins == ["https://app.example:8443", "*"]
    for bad in ("https://app.example/", "app.example", "ftp://x"):
        with pytest.raises(ValidationError, match="http_cors_origins"):
            Settings(http_cors_origins=[bad])
