"""The I/O-free parts of batch tracking and award watching, shared by both clients."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import grpc

from accolade._common import start_cursor
from accolade._errors import (
    InternalError,
    RPCError,
    code_of,
    details_of,
    error_for,
    from_grpc,
    size_limit_message,
)
from accolade._retry import RetryPolicy, is_transient
from accolade.v1 import tracker_pb2, types_pb2

log = logging.getLogger("accolade")
MAX_BATCH = 500  # events per TrackEvents call; the server accepts up to 1000

_CODES = {code.value[0]: code for code in grpc.StatusCode}


def status_code(number: int) -> grpc.StatusCode:
    """A `google.rpc.Code` number (as in `EventError.code`) as a gRPC status code."""
    return _CODES.get(number, grpc.StatusCode.UNKNOWN)


def event_error(result: tracker_pb2.TrackEventResult) -> RPCError | None:
    """The typed error of one batch result, or None when it was recorded."""
    if result.WhichOneof("result") != "error":
        return None
    return error_for(status_code(result.error.code), result.error.message)


class Batch:
    """Results of a TrackEvents batch, re-sending only events that failed transiently."""

    def __init__(self, requests: Sequence[tracker_pb2.TrackEventRequest]) -> None:
        self.requests = list(requests)
        self.results: list[tracker_pb2.TrackEventResult | None] = [None] * len(self.requests)
        self.pending = list(range(len(self.requests)))

    def chunks(self) -> list[list[int]]:
        return [self.pending[i : i + MAX_BATCH] for i in range(0, len(self.pending), MAX_BATCH)]

    def request(self, chunk: Sequence[int]) -> tracker_pb2.TrackEventsRequest:
        return tracker_pb2.TrackEventsRequest(events=[self.requests[i] for i in chunk])

    def record(self, chunk: Sequence[int], response: tracker_pb2.TrackEventsResponse) -> None:
        if len(response.results) != len(chunk):
            raise InternalError(
                f"the server answered {len(response.results)} results for {len(chunk)} events"
            )
        for i, result in zip(chunk, response.results, strict=True):
            self.results[i] = result

    def retry_transient(self) -> bool:
        """Mark events whose error is transient as pending again; True if there are any."""
        self.pending = [
            i
            for i, result in enumerate(self.results)
            if result is not None
            and result.WhichOneof("result") == "error"
            and is_transient(status_code(result.error.code))
        ]
        return bool(self.pending)

    def final(self) -> list[tracker_pb2.TrackEventResult]:
        return [r for r in self.results if r is not None]


class Watch:
    """Cursor bookkeeping for a resumable WatchAwards stream.

    After a disconnect the stream is reopened after the last cursor delivered, or after the
    start cursor the server announced (in the stream's first, `subscribed` message; servers
    older than that message announce it only in the `accolade-start-cursor` header, which is
    read too), so nothing is missed; entries at or below that cursor are skipped, so nothing
    is delivered twice.
    """

    def __init__(
        self,
        *,
        user_ids: Iterable[str],
        achievement_ids: Iterable[str],
        source: types_pb2.AwardSource.ValueType,
        after_cursor: int | None,
        retry: RetryPolicy,
        max_reconnects: int | None,
    ) -> None:
        self.filter = tracker_pb2.WatchAwardsRequest(
            user_ids=list(user_ids), achievement_ids=list(achievement_ids), source=source
        )
        self.cursor = after_cursor
        self.retry = retry
        self.max_reconnects = max_reconnects
        self.failures = 0
        self.reconnects = 0

    def request(self) -> tracker_pb2.WatchAwardsRequest:
        request = tracker_pb2.WatchAwardsRequest()
        request.CopyFrom(self.filter)
        if self.cursor is not None:
            request.after_cursor = self.cursor
        return request

    def connected(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> None:
        start = start_cursor(metadata)
        if start is not None:  # None: the call failed before the server subscribed it
            self.subscribed(start)

    def subscribed(self, start: int) -> None:
        """The server subscribed the stream; it starts after `start`."""
        if self.cursor is None:
            self.cursor = start
        self.failures = 0

    def accept(self, response: tracker_pb2.WatchAwardsResponse) -> types_pb2.Award | None:
        """The award to deliver, or None for the `subscribed` message and for entries
        already delivered."""
        self.failures = 0
        if response.subscribed:
            self.subscribed(response.cursor)
            return None
        if self.cursor is not None and response.cursor <= self.cursor:
            return None
        self.cursor = response.cursor
        return response.award

    def reconnect_delay(self, code: grpc.StatusCode | None) -> float | None:
        """Seconds to wait before reconnecting, or None to give up."""
        if code is not None and not is_transient(code):
            return None
        if self.max_reconnects is not None and self.reconnects >= self.max_reconnects:
            return None
        self.failures += 1
        self.reconnects += 1
        return self.retry.backoff(self.failures)

    def interrupted(self, error: grpc.RpcError | None) -> float | None:
        """The stream ended (`error` None: the server closed it). Seconds to wait before
        reconnecting; None to end the iteration; raises the typed error if it must not
        reconnect."""
        code = code_of(error) if error is not None else None
        oversized = error is not None and size_limit_message(code, details_of(error)) is not None
        delay = None if oversized else self.reconnect_delay(code)
        if delay is None:
            if error is None:
                return None
            raise from_grpc(error) from error
        log.warning(
            "award stream interrupted (%s); resuming after cursor %s in %.1fs",
            code.name if code else "closed by server",
            self.cursor,
            delay,
        )
        return delay
