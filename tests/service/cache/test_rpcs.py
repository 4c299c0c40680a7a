"""Every CacheService RPC over a real gRPC server, with Redis and with memory only."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
import redis
from google.protobuf import duration_pb2

from mediasuite.cache.v1 import cache_service_pb2 as pb
from mediasuite.common.v1 import media_pb2
from tests.support.cache import RunningCache, running_cache

NS = "image_analysis"
JSON = b'{"sharpness": 0.93, "exposure": 0.51, "issues": ["noise", "low_contrast"]}\n' * 40


def _ttl(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


async def test_set_get_delete_round_trip(cache: RunningCache) -> None:
    stub = cache.stub
    reply = await stub.Set(
        pb.SetRequest(namespace=NS, key="photo:1", value=JSON, content_type="application/json")
    )
    assert reply.info.codec == pb.CODEC_ZSTD
    assert reply.info.raw_bytes == len(JSON)
    assert 0 < reply.info.stored_bytes < len(JSON) // 4
    ttl = reply.info.expires_at.ToMilliseconds() - reply.info.stored_at.ToMilliseconds()
    assert ttl == 3600 * 1000

    got = await stub.Get(pb.GetRequest(namespace=NS, key="photo:1"))
    assert got.found
    assert got.value == JSON
    assert got.info.content_type == "application/json"
    assert got.info.codec == pb.CODEC_ZSTD

    assert (await stub.Delete(pb.DeleteRequest(namespace=NS, key="photo:1"))).deleted
    assert not (await stub.Delete(pb.DeleteRequest(namespace=NS, key="photo:1"))).deleted
    missing = await stub.Get(pb.GetRequest(namespace=NS, key="photo:1"))
    assert (missing.found, missing.miss_reason, missing.value) == (False, pb.MISS_REASON_ABSENT, b"")


async def test_small_and_incompressible_values_are_stored_raw(cache: RunningCache) -> None:
    for key, value in [("tiny", b"x" * 1024), ("noise", os.urandom(50_000)), ("empty", b"")]:
        info = (await cache.stub.Set(pb.SetRequest(namespace=NS, key=key, value=value))).info
        assert (info.codec, info.stored_bytes, info.raw_bytes) == (pb.CODEC_RAW, len(value), len(value))
        assert (await cache.stub.Get(pb.GetRequest(namespace=NS, key=key))).value == value


async def test_large_value_round_trips(cache: RunningCache) -> None:
    value = (b"frame " + os.urandom(10)) * 500_000  # ~8 MB compressible, decompressed off the loop
    value = value[: 8 * 1024 * 1024]
    info = (await cache.stub.Set(pb.SetRequest(namespace=NS, key="big", value=value))).info
    assert info.codec == pb.CODEC_ZSTD
    got = await cache.stub.Get(pb.GetRequest(namespace=NS, key="big"))
    assert got.value == value


async def test_per_call_ttl_shortens_and_entries_expire(cache: RunningCache) -> None:
    info = (await cache.stub.Set(pb.SetRequest(namespace=NS, key="short", value=b"v", ttl=_ttl(0.3)))).info
    assert info.expires_at.ToMilliseconds() - info.stored_at.ToMilliseconds() == 300
    assert (await cache.stub.Get(pb.GetRequest(namespace=NS, key="short"))).found
    await asyncio.sleep(0.6)
    gone = await cache.stub.Get(pb.GetRequest(namespace=NS, key="short"))
    assert (gone.found, gone.miss_reason) == (False, pb.MISS_REASON_ABSENT)


async def test_many_key_calls_with_hits_and_misses_in_order(cache: RunningCache) -> None:
    entries = [pb.SetManyEntry(key=f"k{i}", value=JSON + bytes([i])) for i in range(0, 20, 2)]
    stored = await cache.stub.SetMany(pb.SetManyRequest(namespace=NS, entries=entries))
    assert stored.stored_count == 10
    assert 0 < stored.stored_bytes < 10 * len(JSON)

    keys = [f"k{i}" for i in reversed(range(20))] + ["k4"]
    got = await cache.stub.GetMany(pb.GetManyRequest(namespace=NS, keys=keys))
    assert [r.key for r in got.results] == keys
    assert [r.found for r in got.results] == [int(k[1:]) % 2 == 0 for k in keys]
    for r in got.results:
        if r.found:
            assert r.value == JSON + bytes([int(r.key[1:])])
        else:
            assert r.miss_reason == pb.MISS_REASON_ABSENT

    deleted = await cache.stub.DeleteMany(pb.DeleteManyRequest(namespace=NS, keys=["k0", "k1", "k2", "k2"]))
    assert deleted.deleted_count == 2
    after = await cache.stub.GetMany(pb.GetManyRequest(namespace=NS, keys=["k0", "k2", "k4"]))
    assert [r.found for r in after.results] == [False, False, True]


async def test_namespaces_do_not_share_keys(cache: RunningCache) -> None:
    await cache.stub.Set(pb.SetRequest(namespace="thumbnail", key="same", value=b"thumb"))
    await cache.stub.Set(pb.SetRequest(namespace="media_metadata", key="same", value=b"meta"))
    assert (await cache.stub.Get(pb.GetRequest(namespace="thumbnail", key="same"))).value == b"thumb"
    assert (await cache.stub.Get(pb.GetRequest(namespace="media_metadata", key="same"))).value == b"meta"


NASTY_KEYS = [
    "a*b",
    "a?b",
    "[x]",
    "back\\slash",
    "new\nline",
    "nul\x00byte",
    "emoji 📷",
    "🙂" * 200,
    "e:thumbnail:x",
    " ",
    "tab\there",
]


async def test_nasty_keys_round_trip_and_stay_literal_in_invalidation(cache: RunningCache) -> None:
    entries = [pb.SetManyEntry(key=k, value=k.encode()) for k in NASTY_KEYS]
    await cache.stub.SetMany(pb.SetManyRequest(namespace=NS, entries=entries))
    got = await cache.stub.GetMany(pb.GetManyRequest(namespace=NS, keys=NASTY_KEYS))
    assert [r.value for r in got.results] == [k.encode() for k in NASTY_KEYS]
    # A prefix with glob characters deletes only keys that really start with it.
    assert (await cache.stub.Invalidate(pb.InvalidateRequest(namespace=NS, prefix="a*"))).deleted_count == 1
    assert (await cache.stub.Invalidate(pb.InvalidateRequest(namespace=NS, prefix="["))).deleted_count == 1
    left = await cache.stub.GetMany(pb.GetManyRequest(namespace=NS, keys=NASTY_KEYS))
    assert [r.key for r in left.results if not r.found] == ["a*b", "[x]"]


async def test_invalidate_by_prefix_pattern_and_everywhere(cache: RunningCache) -> None:
    for ns in ("thumbnail", "image_analysis"):
        entries = [pb.SetManyEntry(key=f"{kind}:{i}", value=b"v") for kind in ("a", "b") for i in range(30)]
        await cache.stub.SetMany(pb.SetManyRequest(namespace=ns, entries=entries))
    by_prefix = await cache.stub.Invalidate(pb.InvalidateRequest(namespace="thumbnail", prefix="a:"))
    assert by_prefix.deleted_count == 30
    by_pattern = await cache.stub.Invalidate(pb.InvalidateRequest(namespace="thumbnail", pattern="b:[12]?"))
    assert by_pattern.deleted_count == 20
    everywhere = await cache.stub.Invalidate(pb.InvalidateRequest(namespace="*", pattern="b:*"))
    assert everywhere.deleted_count == 10 + 30
    rest = await cache.stub.Invalidate(pb.InvalidateRequest(namespace="image_analysis", prefix=""))
    assert rest.deleted_count == 30
    stats = await cache.stub.GetStats(pb.GetStatsRequest())
    assert stats.total.entries == 0
    assert stats.total.deletes == 120


async def test_invalidate_by_source_path(cache: RunningCache) -> None:
    def fp(path: str) -> media_pb2.SourceFingerprint:
        return media_pb2.SourceFingerprint(path=path, size_bytes=10, mtime_ns=5)

    for ns in ("thumbnail", "media_metadata"):
        await cache.stub.SetMany(
            pb.SetManyRequest(
                namespace=ns,
                entries=[
                    pb.SetManyEntry(key="a-small", value=b"1", fingerprint=fp("albums/a.jpg")),
                    pb.SetManyEntry(key="a-large", value=b"2", fingerprint=fp("albums/a.jpg")),
                    pb.SetManyEntry(key="b-small", value=b"3", fingerprint=fp("albums/b.jpg")),
                ],
            )
        )
    # Overwritten without a source: no longer made from a.jpg, so it stays.
    await cache.stub.Set(pb.SetRequest(namespace="thumbnail", key="a-large", value=b"new"))
    one = await cache.stub.Invalidate(pb.InvalidateRequest(namespace="thumbnail", source_path="albums/a.jpg"))
    assert one.deleted_count == 1
    everywhere = await cache.stub.Invalidate(pb.InvalidateRequest(namespace="*", source_path="albums/a.jpg"))
    assert everywhere.deleted_count == 2
    left = await cache.stub.GetMany(
        pb.GetManyRequest(namespace="thumbnail", keys=["a-small", "a-large", "b-small"])
    )
    assert [r.found for r in left.results] == [False, True, True]


async def _warm_stream(items: list[pb.WarmRequest]) -> AsyncIterator[pb.WarmRequest]:
    for item in items:
        yield item


async def test_warm_reports_stored_skipped_and_refused(cache: RunningCache) -> None:
    await cache.stub.Set(pb.SetRequest(namespace=NS, key="present", value=b"old"))
    items = [pb.WarmRequest(namespace=NS, entry=pb.SetManyEntry(key=f"w{i}", value=JSON)) for i in range(600)]
    items += [
        pb.WarmRequest(namespace=NS, entry=pb.SetManyEntry(key="present", value=b"new"), only_if_absent=True),
        pb.WarmRequest(namespace="nope", entry=pb.SetManyEntry(key="x", value=b"v")),
        pb.WarmRequest(namespace=NS, entry=pb.SetManyEntry(key="", value=b"v")),
        pb.WarmRequest(
            namespace="thumbnail", entry=pb.SetManyEntry(key="t", value=b"v", ttl=_ttl(10 * 86400))
        ),
    ]
    report = await cache.stub.Warm(_warm_stream(items))
    assert (report.stored_count, report.skipped_count, report.refused_count) == (600, 1, 3)
    assert report.stored_bytes > 0
    assert len(report.refusals) == 3
    assert "unknown namespace 'nope'" in report.refusals[0]
    assert "key must not be empty" in report.refusals[1]
    assert "exceeds the maximum" in report.refusals[2]
    assert (await cache.stub.Get(pb.GetRequest(namespace=NS, key="present"))).value == b"old"
    assert (await cache.stub.Get(pb.GetRequest(namespace=NS, key="w599"))).value == JSON


async def test_list_namespaces(cache: RunningCache) -> None:
    reply = await cache.stub.ListNamespaces(pb.ListNamespacesRequest())
    policies = {p.name: p for p in reply.namespaces}
    assert len(policies) == 8
    assert policies["media_metadata"].default_ttl.seconds == 86400
    assert policies["media_metadata"].freshness_checked
    assert policies["bulk_operation_result"].max_ttl.seconds == 900


async def test_stats_per_namespace_and_total(cache: RunningCache) -> None:
    stub = cache.stub
    await stub.Set(pb.SetRequest(namespace=NS, key="a", value=JSON))
    await stub.Set(pb.SetRequest(namespace="thumbnail", key="t", value=b"x" * 100))
    for key in ("a", "a", "missing"):
        await stub.Get(pb.GetRequest(namespace=NS, key=key))
    await stub.Get(pb.GetRequest(namespace="thumbnail", key="nope"))
    stats = await stub.GetStats(pb.GetStatsRequest())
    rows = {row.namespace: row for row in stats.namespaces}
    assert len(rows) == 8
    row = rows[NS]
    assert (row.hits, row.misses, row.sets, row.entries) == (2, 1, 1, 1)
    assert row.hit_ratio == pytest.approx(2 / 3)
    assert row.raw_bytes == len(JSON)
    assert row.compression_ratio == pytest.approx(len(JSON) / row.stored_bytes)
    assert row.compression_ratio > 4
    assert 0 < row.latency_p50_us <= row.latency_p99_us
    assert (stats.total.hits, stats.total.misses, stats.total.sets, stats.total.entries) == (2, 2, 2, 2)
    assert stats.total.raw_bytes == len(JSON) + 100
    assert rows["thumbnail"].compression_ratio == 1.0
    one = await stub.GetStats(pb.GetStatsRequest(namespace="thumbnail"))
    assert [r.namespace for r in one.namespaces] == ["thumbnail"]
    assert not stats.backend.degraded
    kind = pb.BACKEND_KIND_REDIS if cache.backend == "redis" else pb.BACKEND_KIND_MEMORY
    assert (stats.backend.active, stats.backend.configured) == (kind, kind)


async def test_keys_are_written_under_the_configured_prefix(redis_cache: RunningCache) -> None:
    await redis_cache.stub.Set(pb.SetRequest(namespace="thumbnail", key="k", value=b"v"))
    client = redis.Redis.from_url(redis_cache.redis_url)
    try:
        keys = sorted(k.decode() for k in client.scan_iter(match=redis_cache.prefix + "*"))
    finally:
        client.close()
    assert keys == [f"{redis_cache.prefix}e:thumbnail:k"]


async def test_memory_only_reports_memory_backend() -> None:
    async with running_cache("memory") as cache:
        stats = await cache.stub.GetStats(pb.GetStatsRequest())
    assert (stats.backend.active, stats.backend.configured) == (
        pb.BACKEND_KIND_MEMORY,
        pb.BACKEND_KIND_MEMORY,
    )
    assert not stats.backend.degraded


async def test_lru_eviction_under_a_small_byte_budget() -> None:
    async with running_cache("memory", CACHE_MEMORY_BYTES="64KiB") as cache:
        for i in range(40):
            await cache.stub.Set(pb.SetRequest(namespace=NS, key=f"k{i}", value=os.urandom(4000)))
            await cache.stub.Get(pb.GetRequest(namespace=NS, key="k0"))  # k0 stays recently used
        stats = await cache.stub.GetStats(pb.GetStatsRequest(namespace=NS))
        got = await cache.stub.GetMany(pb.GetManyRequest(namespace=NS, keys=[f"k{i}" for i in range(40)]))
    row = stats.namespaces[0]
    found = [r.key for r in got.results if r.found]
    assert row.evictions == 40 - row.entries
    assert row.evictions > 20
    assert row.stored_bytes <= 64 * 1024
    assert "k0" in found
    assert "k39" in found
    assert "k1" not in found
    assert len(found) == row.entries


async def test_health_of_the_cache_service(cache: RunningCache) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(cache.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service="mediasuite.cache.v1.CacheService"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
