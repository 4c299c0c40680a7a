"""Fixtures of the cache service tests: a real server with the Redis backend or memory only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.cache import RunningCache, running_cache


@pytest.fixture(params=["redis", "memory"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[RunningCache]:
    """The cache on the shared Redis (private prefix), then again with memory only."""
    async with running_cache(request.param) as running:
        yield running


@pytest.fixture
async def redis_cache() -> AsyncIterator[RunningCache]:
    """The cache on the shared Redis (private prefix)."""
    async with running_cache("redis") as running:
        yield running
