"""Opaque page tokens: a position plus the filters they were issued for."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from accolade_server.domain.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(requested: int) -> int:
    """0 means the default; sizes above the maximum are lowered to it (AIP-158)."""
    if requested < 0:
        raise InvalidArgument("must not be negative", field="page_size")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode(position: Any, filters: dict[str, Any]) -> str:
    raw = json.dumps({"p": position, "f": filters}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(token: str, filters: dict[str, Any]) -> Any:
    """The position in `token`, or None for an empty token."""
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        position, issued_for = data["p"], data["f"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument("is not a token this server issued", field="page_token") from exc
    if issued_for != filters:
        raise InvalidArgument(
            "was issued for other filters; repeat the same filters or start over",
            field="page_token",
        )
    return position
