"""Signing and verifying Accolade webhook deliveries (stdlib only).

Every delivery is an HTTP POST of a JSON award with these headers:

- ``Accolade-Signature: t=<unix seconds>,v1=<hex>`` where ``<hex>`` is
  HMAC-SHA256(secret, ``f"{t}."`` + raw body). Check it with :func:`verify`, which also
  rejects timestamps older than ``tolerance`` seconds (replay protection).
- ``Accolade-Delivery: <cursor>`` — the award log cursor, unique per entry: deliveries are
  at-least-once, so deduplicate on it.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Accolade-Signature"
DELIVERY_HEADER = "Accolade-Delivery"


class SignatureError(ValueError):
    """The signature header is missing, malformed, wrong or too old."""


def sign(secret: str | bytes, body: bytes, timestamp: int | None = None) -> str:
    """The value of the Accolade-Signature header for `body`."""
    key = secret.encode() if isinstance(secret, str) else secret
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(key, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(
    secret: str | bytes,
    header: str | None,
    body: bytes,
    *,
    tolerance: int = 300,
    now: float | None = None,
) -> None:
    """Raise SignatureError unless `header` signs `body` with `secret` within `tolerance` s."""
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        t, given = int(parts["t"]), parts["v1"]
    except (KeyError, ValueError) as exc:
        raise SignatureError(f"malformed {SIGNATURE_HEADER} header") from exc
    current = time.time() if now is None else now
    if abs(current - t) > tolerance:
        raise SignatureError("timestamp outside the tolerance (replayed or clock skew)")
    expected = sign(secret, body, t).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, given):
        raise SignatureError("signature does not match")
