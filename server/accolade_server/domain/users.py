"""User profiles: presentation data and the attributes rule conditions read (`user.*`).

A profile never changes past counts: conditions read the attributes as they are when an
event is counted.
"""

from __future__ import annotations

import difflib
import functools
import re
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from accolade_server.domain.errors import InvalidArgument

#: The fields an upsert's `update_mask` may name (output-only times are not among them).
PROFILE_FIELDS = ("display_name", "avatar_url", "time_zone", "locale", "attributes")
MAX_DISPLAY_NAME = 200
MAX_AVATAR_URL = 2048
MAX_TIME_ZONE = 64
MAX_LOCALE = 64
#: BCP 47, loosely: a 2-8 letter language, then subtags of 1-8 letters or digits.
LOCALE = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    display_name: str = ""
    avatar_url: str = ""
    time_zone: str = ""
    locale: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    create_time: datetime | None = None
    update_time: datetime | None = None


def mask_fields(user: User, paths: Sequence[str], prefix: str = "update_mask") -> tuple[str, ...]:
    """The profile fields an update mask names: empty means those set to a non-default value
    in `user` (AIP-134's implied mask), "*" all of them."""
    if not paths:
        return tuple(f for f in PROFILE_FIELDS if getattr(user, f))
    if list(paths) == ["*"]:
        return PROFILE_FIELDS
    chosen: list[str] = []
    for i, path in enumerate(paths):
        if path not in PROFILE_FIELDS:
            hint = difflib.get_close_matches(path, PROFILE_FIELDS, n=1)
            did_you_mean = f"; did you mean {hint[0]!r}?" if hint else ""
            raise InvalidArgument(
                f"{path!r} is not a field a mask may name; use any of "
                f"{', '.join(PROFILE_FIELDS)} or '*'{did_you_mean}",
                field=f"{prefix}.paths[{i}]",
            )
        if path not in chosen:
            chosen.append(path)
    return tuple(chosen)


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_time_zone(value: str, field: str) -> None:
    """An IANA zone name this server's time zone database knows (empty: unknown zone)."""
    if not value:
        return
    if len(value) > MAX_TIME_ZONE or _CONTROL.search(value):
        raise InvalidArgument(
            f"must be at most {MAX_TIME_ZONE} characters without control characters",
            field=field,
        )
    if value in _zone_names():
        return
    hint = difflib.get_close_matches(value, sorted(_zone_names()), n=1)
    did_you_mean = f"; did you mean {hint[0]!r}?" if hint else ""
    raise InvalidArgument(
        f"{value!r} is not an IANA time zone name (such as 'Europe/Berlin' or "
        f"'America/Los_Angeles'){did_you_mean}",
        field=field,
    )


def check_locale(value: str, field: str) -> None:
    if not value:
        return
    if len(value) <= MAX_LOCALE and LOCALE.match(value):
        return
    hint = ""
    if "_" in value and LOCALE.match(value.replace("_", "-")):
        hint = f"; BCP 47 joins subtags with '-': {value.replace('_', '-')!r}"
    raise InvalidArgument(
        f"{value!r} is not a language tag (BCP 47, such as 'en', 'pt-BR' or 'zh-Hant-TW'){hint}",
        field=field,
    )


def check_profile(user: User, fields: Sequence[str], prefix: str = "user") -> None:
    """The presentation fields among `fields`; the caller checks `attributes` (its bounds
    are the server's event property limits)."""
    if "display_name" in fields:
        if len(user.display_name) > MAX_DISPLAY_NAME:
            raise InvalidArgument(
                f"is longer than {MAX_DISPLAY_NAME} characters", field=f"{prefix}.display_name"
            )
        if _CONTROL.search(user.display_name):
            raise InvalidArgument(
                "must not contain control characters", field=f"{prefix}.display_name"
            )
    if "avatar_url" in fields and user.avatar_url:
        url = user.avatar_url
        if len(url) > MAX_AVATAR_URL or _CONTROL.search(url) or " " in url:
            raise InvalidArgument(
                f"must be a URL of at most {MAX_AVATAR_URL} characters without spaces or "
                "control characters",
                field=f"{prefix}.avatar_url",
            )
        if not url.lower().startswith(("https://", "http://")):
            raise InvalidArgument(
                f"{url[:40]!r} is not an http or https URL", field=f"{prefix}.avatar_url"
            )
    if "time_zone" in fields:
        check_time_zone(user.time_zone, f"{prefix}.time_zone")
    if "locale" in fields:
        check_locale(user.locale, f"{prefix}.locale")
