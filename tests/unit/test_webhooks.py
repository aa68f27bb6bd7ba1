"""`accolade.webhooks.verify` does what its docstring says: returns None or raises."""

from __future__ import annotations

import pytest

from accolade.webhooks import SignatureError, sign, verify

BODY = b'{"id":"1"}'
NOW = 1_800_000_000


def test_a_genuine_delivery_returns_none() -> None:
    """`-> None` in the signature: mypy itself refuses `if verify(...)` mistakes."""
    verify("s", sign("s", BODY, NOW), BODY, now=NOW)
    verify(b"s", sign("s", BODY, NOW - 300), BODY, now=NOW)  # at the edge


@pytest.mark.parametrize(
    ("header", "body", "reason"),
    [
        (None, BODY, "missing"),
        ("", BODY, "missing"),
        ("v1=abc", BODY, "malformed"),
        ("t=soon,v1=abc", BODY, "malformed"),
        (f"t={NOW}", BODY, "malformed"),
        (sign("s", BODY, NOW - 301), BODY, "tolerance"),  # too old: a replay
        (sign("s", BODY, NOW + 301), BODY, "tolerance"),  # from the future: clock skew
        (sign("other", BODY, NOW), BODY, "does not match"),
        (sign("s", BODY, NOW), BODY + b" ", "does not match"),  # body not byte for byte
    ],
)
def test_anything_else_raises_signature_error(header: str | None, body: bytes, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        verify("s", header, body, now=NOW)
