"""Award streams that resume by themselves: a blocking iterator and an async one.

Both keep their cursor bookkeeping in `_state.Watch`; they differ only in how they read.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any

import grpc

from accolade._state import Watch
from accolade.v1 import types_pb2

Metadata = tuple[tuple[str, str], ...]


class _Stream:
    """What both streams keep: the call, the cursor bookkeeping and whether it was closed."""

    def __init__(self, tracker: Any, metadata: Metadata, watch: Watch) -> None:
        self._tracker = tracker
        self._metadata = metadata
        self._watch = watch
        self._call: Any = None
        self._closed = False

    @property
    def cursor(self) -> int | None:
        """The cursor of the last entry delivered (or the start cursor): resume after it."""
        return self._watch.cursor

    def __repr__(self) -> str:
        """`AwardStream(cursor=3, source=AWARD_SOURCE_MANUAL, user_ids=['u1'])`: enum names,
        and only the filters that are set."""
        f = self._watch.filter
        parts = [f"cursor={self.cursor}"]
        if f.source:
            parts.append(f"source={types_pb2.AwardSource.Name(f.source)}")
        if f.user_ids:
            parts.append(f"user_ids={list(f.user_ids)!r}")
        if f.achievement_ids:
            parts.append(f"achievement_ids={list(f.achievement_ids)!r}")
        if self._closed:
            parts.append("closed")
        return f"{type(self).__name__}({', '.join(parts)})"

    def close(self) -> None:
        """Stop the stream; iteration ends (a blocked `next()` in another thread returns)."""
        self._closed = True
        call = self._call
        if call is not None:
            call.cancel()


class AwardStream(_Stream, Iterator[types_pb2.Award]):
    """A resumable, blocking iterator over award log entries; see `Client.watch_awards`."""

    def connect(self) -> None:
        """Open the stream and wait until the server has subscribed it."""
        if self._call is not None or self._closed:
            return
        self._call = self._tracker.WatchAwards(self._watch.request(), metadata=self._metadata)
        # Returns once the headers arrived or the call failed; a failure surfaces (and is
        # retried) when iterating.
        self._watch.connected(self._call.initial_metadata())

    def __next__(self) -> types_pb2.Award:
        while not self._closed:
            self.connect()
            error: grpc.RpcError | None = None
            try:
                award = self._watch.accept(next(self._call))
            except StopIteration:
                pass
            except grpc.RpcError as exc:
                error = exc
            else:
                if award is not None:
                    return award
                continue
            self._call = None
            if self._closed:
                break
            delay = self._watch.interrupted(error)
            if delay is None:
                break
            time.sleep(delay)
        raise StopIteration

    def __enter__(self) -> AwardStream:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncAwardStream(_Stream, AsyncIterator[types_pb2.Award]):
    """A resumable async iterator over award log entries; see `AsyncClient.watch_awards`."""

    async def connect(self) -> None:
        """Open the stream and wait until the server has subscribed it."""
        if self._call is not None or self._closed:
            return
        self._call = self._tracker.WatchAwards(self._watch.request(), metadata=self._metadata)
        with contextlib.suppress(grpc.RpcError):  # surfaces (and is retried) when reading
            self._watch.connected(await self._call.initial_metadata())

    async def __anext__(self) -> types_pb2.Award:
        while not self._closed:
            await self.connect()
            error: grpc.RpcError | None = None
            try:
                response = await self._call.read()
            except grpc.RpcError as exc:
                error = exc
            else:
                if response is not grpc.aio.EOF:
                    award = self._watch.accept(response)
                    if award is not None:
                        return award
                    continue
            self._call = None
            if self._closed:
                break
            delay = self._watch.interrupted(error)
            if delay is None:
                break
            await asyncio.sleep(delay)
        raise StopAsyncIteration

    async def __aenter__(self) -> AsyncAwardStream:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
