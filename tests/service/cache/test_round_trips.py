"""Many-key calls cost one Redis command, concurrent Gets share MGETs, invalidation uses SCAN (never
KEYS). Counted with Redis' own command statistics on a private redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from mediasuite.cache.v1 import cache_service_pb2 as pb
from tests.support.cache import running_cache
from tests.support.redis import PrivateRedis, private_redis

NS = "thumbnail"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateRedis]:
    with private_redis(tmp_path) as running:
        yield running


def _calls(server: PrivateRedis) -> dict[str, int]:
    client = redis.Redis.from_url(server.url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


_OURS = {"info", "hello", "client|setinfo"}  # the test's own connection that reads the statistics


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {
        k: after.get(k, 0) - before.get(k, 0)
        for k in after
        if after.get(k, 0) != before.get(k, 0) and k not in _OURS
    }


async def test_many_key_calls_are_one_command(server: PrivateRedis) -> None:
    async with running_cache("redis", redis_url=server.url) as cache:
        entries = [pb.SetManyEntry(key=f"k{i}", value=b"v") for i in range(100)]
        await cache.stub.SetMany(pb.SetManyRequest(namespace=NS, entries=entries))
        before = _calls(server)
        got = await cache.stub.GetMany(pb.GetManyRequest(namespace=NS, keys=[f"k{i}" for i in range(150)]))
        assert sum(r.found for r in got.results) == 100
        after_get = _calls(server)
        assert _delta(before, after_get) == {"mget": 1}
        await cache.stub.DeleteMany(pb.DeleteManyRequest(namespace=NS, keys=[f"k{i}" for i in range(100)]))
        assert _delta(after_get, _calls(server)) == {"unlink": 1}


async def test_concurrent_gets_each_get_their_own_value_in_no_more_round_trips(server: PrivateRedis) -> None:
    async with running_cache("redis", redis_url=server.url) as cache:
        entries = [pb.SetManyEntry(key=f"k{i}", value=str(i).encode()) for i in range(200)]
        await cache.stub.SetMany(pb.SetManyRequest(namespace=NS, entries=entries))
        before = _calls(server)

        async def get(i: int) -> bytes:
            return (await cache.stub.Get(pb.GetRequest(namespace=NS, key=f"k{i}"))).value

        values = await asyncio.gather(*(get(i) for i in range(200)))
        delta = _delta(before, _calls(server))
    assert values == [str(i).encode() for i in range(200)]
    assert 0 < delta.get("get", 0) + delta.get("mget", 0) <= 200


async def test_invalidation_scans_and_never_uses_keys(server: PrivateRedis) -> None:
    async with running_cache("redis", redis_url=server.url) as cache:
        for start in range(0, 2500, 500):
            entries = [pb.SetManyEntry(key=f"p:{i}", value=b"v") for i in range(start, start + 500)]
            await cache.stub.SetMany(pb.SetManyRequest(namespace=NS, entries=entries))
        before = _calls(server)
        reply = await cache.stub.Invalidate(pb.InvalidateRequest(namespace=NS, pattern="p:1*"))
        assert reply.deleted_count == 1 + 10 + 100 + 1000
        delta = _delta(before, _calls(server))
        stats = await cache.stub.GetStats(pb.GetStatsRequest(namespace=NS))
    assert "keys" not in delta
    assert delta["scan"] >= 2  # incremental: several SCAN steps over 2500 keys
    assert stats.namespaces[0].entries == 2500 - 1111
