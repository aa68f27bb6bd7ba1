"""Stopping background tasks without ever hanging shutdown."""

from __future__ import annotations

import asyncio

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
