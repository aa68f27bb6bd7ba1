"""Stopping background tasks without ever hanging shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

log = structlog.get_logger("accolade.tasks")


async def cancel_and_wait(task: asyncio.Task[None] | None, seconds: float = 5.0) -> None:
    """Cancel `task` and wait for it at most `seconds`; log (and move on) if it lingers."""
    if task is None or task.done():
        return
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        log.warning("background task did not stop in time", task=task.get_name(), seconds=seconds)


async def finish_then_cancel(
    task: asyncio.Task[None] | None, wake: Callable[[], None], grace: float = 2.0
) -> None:
    """Stop a loop whose owner has set its closing flag: `wake` ends its wait, the step it is
    in may finish for up to `grace` seconds, and only then is it cancelled. A step cancelled
    inside a transaction can leave its connection mid-transaction (on SQLite, the database
    write-locked for every other process) until that connection is collected."""
    if task is None or task.done():
        return
    wake()
    done, _ = await asyncio.wait({task}, timeout=grace)
    if not done:
        await cancel_and_wait(task)
