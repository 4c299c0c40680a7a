"""Closing the worker pool while a worker is being replaced (its operation overran the time
limit): close never fails, the caller gets a clear error, and no worker is left running."""

from __future__ import annotations

import asyncio
import time

import psutil
import pytest

from services.processing.config import PoolSettings
from services.processing.pool import WorkerPool
from services.runtime.errors import MediasuiteError

SETTINGS = PoolSettings(
    workers=1,
    mode="process",
    queue_size=4,
    worker_memory_bytes=0,
    worker_max_tasks=0,
    worker_recycle_rss_bytes=0,
)


def _workers_alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"}


@pytest.mark.parametrize("delay", [0.25, 0.3, 0.32, 0.35, 0.4])
async def test_close_while_a_worker_is_being_replaced(delay: float) -> None:
    pool = WorkerPool(SETTINGS)
    await pool.start()
    started = set(pool.stats().pids)
    call = asyncio.create_task(pool.run(time.sleep, 5, time_limit=0.3))
    await asyncio.sleep(delay)  # around the moment the overrun worker is killed and replaced
    seen = started | set(pool.stats().pids)
    await pool.close()
    with pytest.raises(MediasuiteError) as failed:
        await call
    assert failed.value.code.name in ("DEADLINE_EXCEEDED", "ABORTED")
    deadline = time.monotonic() + 5
    while True:
        alive = _workers_alive(seen)
        if not alive or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert alive == set()


async def test_a_call_made_while_the_pool_closes_is_refused_unavailable() -> None:
    pool = WorkerPool(SETTINGS)
    await pool.start()
    closing = asyncio.create_task(pool.close())
    await asyncio.sleep(0)
    with pytest.raises(MediasuiteError) as refused:
        await pool.run(time.sleep, 0, time_limit=1)
    await closing
    assert refused.value.code.name == "UNAVAILABLE"
    assert "shutting down" in refused.value.message
