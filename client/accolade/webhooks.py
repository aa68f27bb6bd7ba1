"""Signing and verifying Accolade webhook deliveries (stdlib only).

Every delivery is an HTTP POST of a JSON award with these headers:

- ``Accolade-Signature: t=<unix seconds>,v1=<hex>`` where ``<hex>`` is
  HMAC-SHA256(secret, ``f"{t}."`` + raw body). Check it with :func:`verify`: it returns
  ``None`` when the delivery is genuine and raises :class:`SignatureError` otherwise, also
  for a timestamp more than ``tolerance`` seconds away from now (replay protection).
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
    """Check a delivery's signature: return None if it is genuine, else raise SignatureError.

    `header` is the Accolade-Signature header's value (None or "" when absent) and `body`
    the raw request body, byte for byte as received (not re-serialized JSON). It raises
    `SignatureError` when the header is missing or empty; when it is malformed (no `t=`
    with a whole number of seconds, or no `v1=`); when `t` is more than `tolerance`
    seconds before or after `now` (default: the current time), which refuses replays and
    large clock skew; and when the HMAC-SHA256 of ``f"{t}." + body`` under `secret` is not
    the `v1` value. It never returns False::

        try:
            verify(secret, request.headers.get("Accolade-Signature"), request.body)
        except SignatureError:
            return 400
    """
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
