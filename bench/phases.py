"""Where a `TrackEvents` batch's server CPU goes, phase by phase (`--only phases`).

`python -m bench.phases` runs `accolade serve` with a CPU-time counter wrapped around each
step of the write path: the request's conversion, validation, matching, the lock, the read,
the fold, cursor allocation, the progress views and their messages, the stored outcome,
building the write statement (and, within it, the analytics counters), the driver's round
trips, commit and the response. Nothing in the server's code changes: the counters are
wrapped around its functions here before it starts.

Each phase is counted exclusively (a phase's time does not include the phases it calls,
nor garbage collection, which has its own line), in main-thread CPU time, so the phases add
up to the handler's total; "outside the handler" is the rest of the process's CPU time
(gRPC's parsing and serialization, the event loop, other threads). The load is one
`TrackEvents` call of 500 events at a time, so the time of an await inside a phase is the
event loop's own and no other call's.

The counters are cumulative and written to `BENCH_PHASES_OUT` (JSON) after every call; the
bench reads them before and after the measured run and prints the difference per event.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import importlib
import inspect
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: (module, attribute path, phase). Module functions are looked up by their callers at call
#: time (`engine.fold(…)`), and methods on the class, so replacing the attribute is enough.
#: One the server does not have (an older checkout, `--server-path`) is left out.
PHASES: tuple[tuple[str, str, str], ...] = (
    ("accolade_server.rpc.tracker", "BadgeTrackerServicer.TrackEvents", "handler (own code)"),
    ("accolade_server.rpc.tracker", "event_input", "request conversion"),
    ("accolade_server.rpc.tracker", "result_to_proto", "response messages"),
    ("accolade_server.rpc.tracker", "fill_response", "response messages"),
    ("accolade_server.service.tracking", "TrackingService.track_many", "validation"),
    ("accolade_server.service.tracking", "TrackingService._transaction", "transaction (own code)"),
    ("accolade_server.service.batch", "match_batch", "match (CEL)"),
    ("accolade_server.service.batch", "process", "process (own code)"),
    ("accolade_server.rules.engine", "fold", "fold"),
    ("accolade_server.service.ledger", "allocate", "allocate cursors"),
    ("accolade_server.service.ledger", "views_for", "progress views"),
    ("accolade_server.service.outcomes", "messages", "Progress messages"),
    ("accolade_server.service.outcomes", "encode", "stored outcome"),
    ("accolade_server.store.batchstore", "PostgresBatchStore.lock", "lock"),
    ("accolade_server.store.batchstore", "PostgresBatchStore.read", "read (rows)"),
    ("accolade_server.store.batchstore", "PostgresBatchStore.write", "write statement"),
    ("accolade_server.store.batchstore", "PostgresBatchStore._run", "driver"),
    ("accolade_server.store.insights", "Books.pg_parts", "analytics counters"),
    ("accolade_server.store.uow", "UnitOfWork.transaction", "begin/commit"),
)

ORDER = [
    "request conversion",
    "validation",
    "match (CEL)",
    "lock",
    "read (rows)",
    "fold",
    "process (own code)",
    "allocate cursors",
    "progress views",
    "Progress messages",
    "stored outcome",
    "write statement",
    "analytics counters",
    "driver",
    "begin/commit",
    "transaction (own code)",
    "response messages",
    "handler (own code)",
    "garbage collection",
]


class Counters:
    """Exclusive CPU time per phase: a call's time less that of the calls inside it.

    Only calls made by a task inside `TrackEvents` count (other tasks, such as the server's
    background work, interleave with it at every await), each task with its own stack.
    """

    def __init__(self) -> None:
        self.ns: dict[str, int] = dict.fromkeys(ORDER, 0)
        self.events = 0
        #: per task in TrackEvents, per open call: the time its inner calls took
        self._stacks: dict[asyncio.Task[Any] | None, list[int]] = {}
        self._gc_start = 0
        self._gc_total = 0

    def open(self) -> None:
        self._stacks[asyncio.current_task()] = []

    def close(self) -> None:
        del self._stacks[asyncio.current_task()]

    def enter(self) -> tuple[list[int], int, int] | None:
        stack = self._stacks.get(asyncio.current_task())
        if stack is None:
            return None
        stack.append(0)
        return stack, time.thread_time_ns(), self._gc_total

    def leave(self, phase: str, started: tuple[list[int], int, int] | None) -> None:
        if started is None:
            return
        stack, at, gc_at = started
        elapsed = time.thread_time_ns() - at - (self._gc_total - gc_at)
        inner = stack.pop()
        self.ns[phase] += elapsed - inner
        if stack:
            stack[-1] += elapsed

    def on_gc(self, stage: str, info: dict[str, Any]) -> None:
        if stage == "start":
            self._gc_start = time.thread_time_ns()
        else:
            spent = time.thread_time_ns() - self._gc_start
            self._gc_total += spent
            self.ns["garbage collection"] += spent


COUNTERS = Counters()


def _wrap(fn: Callable[..., Any], phase: str) -> Callable[..., Any]:
    c = COUNTERS
    if inspect.isasyncgenfunction(getattr(fn, "__wrapped__", None)):
        # An @asynccontextmanager (`UnitOfWork.transaction`): count its entry and exit, not
        # the caller's block inside it.
        return _wrap_context(fn, phase)
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def wrapper_async(*args: Any, **kwargs: Any) -> Any:
            started = c.enter()
            try:
                return await fn(*args, **kwargs)
            finally:
                c.leave(phase, started)

        return wrapper_async

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = c.enter()
        try:
            return fn(*args, **kwargs)
        finally:
            c.leave(phase, started)

    return wrapper


def _wrap_context(fn: Callable[..., Any], phase: str) -> Callable[..., Any]:
    c = COUNTERS

    class Counted:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __aenter__(self) -> Any:
            started = c.enter()
            try:
                return await self.inner.__aenter__()
            finally:
                c.leave(phase, started)

        async def __aexit__(self, *exc: Any) -> Any:
            started = c.enter()
            try:
                return await self.inner.__aexit__(*exc)
            finally:
                c.leave(phase, started)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Counted:
        return Counted(fn(*args, **kwargs))

    return wrapper


def install(out: Path) -> None:
    for module_name, path, phase in PHASES:
        owner: Any = importlib.import_module(module_name)
        *outer, name = path.split(".")
        for part in outer:
            owner = getattr(owner, part)
        if hasattr(owner, name):
            setattr(owner, name, _wrap(getattr(owner, name), phase))
    gc.callbacks.append(COUNTERS.on_gc)

    from accolade_server.rpc import tracker

    handler = tracker.BadgeTrackerServicer.TrackEvents

    async def track_events(self: Any, request: Any, context: Any) -> Any:
        COUNTERS.open()
        try:
            response = await handler(self, request, context)
        finally:
            COUNTERS.close()
        COUNTERS.events += len(request.events)
        _dump(out)
        return response

    tracker.BadgeTrackerServicer.TrackEvents = track_events  # type: ignore[method-assign]


def _dump(out: Path) -> None:
    """The counters so far (a few hundred bytes, after each call)."""
    collections = [g["collections"] for g in gc.get_stats()]
    out.write_text(
        json.dumps({"events": COUNTERS.events, "ns": COUNTERS.ns, "collections": collections})
    )


def per_event(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """µs per event of each phase between two readings of the counters."""
    events = after["events"] - before["events"]
    return {k: (after["ns"][k] - before["ns"].get(k, 0)) / 1000 / events for k in after["ns"]}


def figures(opts: Any) -> dict[str, Any]:
    from bench.cpu import cpu_seconds
    from bench.harness import (
        apply,
        drop_schema,
        free_port,
        load,
        new_schema,
        process,
        realistic_definitions,
        server_env,
    )

    secs = 4.0 if opts.quick else 20.0
    schema = asyncio.run(new_schema(opts.server_path))
    out = Path(tempfile.gettempdir()) / f"bench-phases-{os.getpid()}.json"
    try:
        port = free_port()
        target = f"127.0.0.1:{port}"
        env = {**server_env(schema, port, opts.server_path), "BENCH_PHASES_OUT": str(out)}
        with process([sys.executable, "-m", "bench.phases"], env, 0, target) as server:
            apply(target, realistic_definitions())
            load("batch", target, 1, 2.0, 20_000, 500)  # warm-up: definitions, plans, users
            before, cpu_before = json.loads(out.read_text()), cpu_seconds(server.pid)
            load("batch", target, 1, secs, 20_000, 500)
            after, cpu_after = json.loads(out.read_text()), cpu_seconds(server.pid)
    finally:
        asyncio.run(drop_schema(schema))
        out.unlink(missing_ok=True)
    us = per_event(before, after)
    handler = sum(us.values())
    process_us = (cpu_after - cpu_before) * 1e6 / (after["events"] - before["events"])
    us["outside the handler"] = process_us - handler
    print(f"Server CPU per event, TrackEvents of 500, one call at a time: {process_us:.0f} µs")
    for phase in [*ORDER, "outside the handler"]:
        print(f"  {phase:<24} {us[phase]:6.1f} µs  {100 * us[phase] / process_us:4.1f} %")
    runs = [a - b for a, b in zip(after["collections"], before["collections"], strict=True)]
    print(f"  (garbage collections by generation in the run: {runs})")
    return {
        "phases_server_cpu_us": round(process_us),
        "phases_us": {k: round(v, 1) for k, v in us.items()},
    }


def main() -> None:
    install(Path(os.environ["BENCH_PHASES_OUT"]))
    from accolade.cli import main as cli

    sys.argv = ["accolade", "serve"]
    cli()


if __name__ == "__main__":
    main()
