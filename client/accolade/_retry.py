"""When and how long to wait before trying a call again."""

from __future__ import annotations

import random
from dataclasses import dataclass

import grpc

# Safe to retry for idempotent calls. CANCELLED is here because a server that is shutting
# down refuses calls it has not started with CANCELLED as well as UNAVAILABLE; the SDK never
# cancels a call itself without giving up on it.
TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
    }
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter for idempotent calls.

    `max_attempts` counts the first try (1 disables retries). Each attempt gets the
    client's deadline afresh. Watch streams reconnect with the same backoff but without an
    attempt limit unless `max_attempts` is given to `watch_awards`.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < self.initial_backoff:
            raise ValueError("need 0 <= initial_backoff <= max_backoff")

    def backoff(self, retry: int) -> float:
        """Seconds to sleep before retry number `retry` (1 for the first retry)."""
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))
        return random.uniform(0, ceiling)


NO_RETRY = RetryPolicy(max_attempts=1)


def is_transient(code: grpc.StatusCode | None) -> bool:
    return code in TRANSIENT
