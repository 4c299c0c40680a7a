"""Cache-aside through the real cache service: repeats are served from it, ProbeMany asks it in bulk,
and a cache that is down or slow never fails a call (and is not logged once per call)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from mediasuite.cache.v1 import cache_service_pb2, cache_service_pb2_grpc
from mediasuite.common.v1 import media_pb2
from mediasuite.processing.v1 import processing_service_pb2 as pb
from services.runtime.telemetry import Telemetry
from tests.service.processing.conftest import Factory
from tests.support import media as M
from tests.support.cache import RunningCache, running_cache
from tests.support.processes import service_process
from tests.support.redis import private_redis

PHOTO = M.save(M.photo(320, 240), "JPEG")


def _thumb(path: str) -> pb.ThumbnailRequest:
    return pb.ThumbnailRequest(media=media_pb2.MediaRef(path=path), preset="tiny")


def _rpc_calls(reader: InMemoryMetricReader) -> Counter[str]:
    """Calls the cache service received, by method (from its runtime's rpc.server.duration)."""
    calls: Counter[str] = Counter()
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data is not None else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "rpc.server.duration":
                    for point in metric.data.data_points:
                        calls[str((point.attributes or {})["rpc.method"])] += int(getattr(point, "count", 0))
    return calls


@contextlib.asynccontextmanager
async def _counted_cache() -> AsyncIterator[tuple[RunningCache, InMemoryMetricReader]]:
    """The real cache service (shared Redis, private prefix), counting the calls it receives."""
    reader = InMemoryMetricReader()
    telemetry = Telemetry(meter_provider=MeterProvider(metric_readers=[reader]))
    async with running_cache("redis", telemetry=telemetry) as cache:
        yield cache, reader


async def test_repeats_are_served_from_the_cache_by_content_not_path(processing: Factory) -> None:
    async with (
        _counted_cache() as (cache, _),
        processing(PROCESSING_CACHE="true", CACHE_ADDR=cache.server.address) as svc,
    ):
        first = await svc.stub.Thumbnail(_thumb(svc.put("a.jpg", PHOTO)))
        second = await svc.stub.Thumbnail(_thumb(svc.put("copy-of-a.jpg", PHOTO)))
        probe = pb.ProbeRequest(media=media_pb2.MediaRef(path="a.jpg"), content_hash=True)
        probed = [await svc.stub.Probe(probe) for _ in range(2)]
        quality = [
            await svc.stub.AnalyzeQuality(pb.AnalyzeQualityRequest(media=media_pb2.MediaRef(path="a.jpg")))
            for _ in range(2)
        ]
        stats = await cache.stub.GetStats(cache_service_pb2.GetStatsRequest())
    assert not first.operation.cached
    assert second.operation.cached
    assert second.output.inline == first.output.inline
    assert second.output.content_key == first.output.content_key
    assert [p.operation.cached for p in probed] == [False, True]
    assert probed[1].info == probed[0].info
    assert [q.operation.cached for q in quality] == [False, True]
    assert quality[1].report == quality[0].report
    written = {n.namespace for n in stats.namespaces if n.sets}
    assert written == {"thumbnail", "media_metadata", "quality_analysis"}


async def test_probe_many_asks_the_cache_once_for_all_its_files(processing: Factory) -> None:
    """32 files cost one GetMany and one SetMany (not a Get and a Set each); a repeat is one GetMany
    served entirely from the cache; a changed file is probed again (its key is its new content)."""
    images = {f"p/{i:02d}.png": M.save(M.photo(40 + i, 30, seed=i), "PNG") for i in range(30)}
    async with (
        _counted_cache() as (cache, reader),
        processing(PROCESSING_CACHE="true", CACHE_ADDR=cache.server.address) as svc,
    ):
        for path, data in images.items():
            svc.put(path, data)
        svc.put("p/copy-of-00.png", images["p/00.png"])
        paths = [*images, "p/copy-of-00.png", "p/missing.png"]
        request = pb.ProbeManyRequest(media=[media_pb2.MediaRef(path=p) for p in paths], content_hash=True)
        first = await svc.stub.ProbeMany(request)
        after_first = _rpc_calls(reader)
        second = await svc.stub.ProbeMany(request)
        after_second = _rpc_calls(reader)
        stats = await cache.stub.GetStats(cache_service_pb2.GetStatsRequest(namespace="media_metadata"))
        svc.put("p/05.png", M.save(M.photo(99, 77, seed=5), "PNG"))
        third = await svc.stub.ProbeMany(request)
        after_third = _rpc_calls(reader)
    infos = [r.info for r in first.results[:31]]
    assert [(i.width, i.height) for i in infos[:30]] == [(40 + i, 30) for i in range(30)]
    assert [i.content_hash for i in infos] == [
        "sha256:" + hashlib.sha256(images[p]).hexdigest() for p in [*images, "p/00.png"]
    ]
    assert first.results[31].error.code_name == "NOT_FOUND"
    assert (after_first["GetMany"], after_first["SetMany"]) == (1, 1)
    assert second == first
    assert (after_second["GetMany"], after_second["SetMany"]) == (2, 1)  # nothing new to store
    (namespace,) = stats.namespaces
    assert (namespace.misses, namespace.hits, namespace.sets) == (30, 30, 30)  # the copy shares a key
    assert (third.results[5].info.width, third.results[5].info.height) == (99, 77)
    assert third.results[6] == first.results[6]
    assert (after_third["GetMany"], after_third["SetMany"]) == (3, 2)
    assert (after_third["Get"], after_third["Set"]) == (0, 0)


async def test_probe_many_succeeds_when_the_cache_is_down_or_slow(
    processing: Factory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Down (nobody listens) and slow (the real cache waiting on a frozen Redis, past processing's
    cache deadline): every probe still succeeds, computed, and the state is logged once."""
    caplog.set_level(logging.INFO, logger="mediasuite.processing.cache")
    data = [M.save(M.photo(50 + i, 40, seed=i), "PNG") for i in range(4)]
    request = pb.ProbeManyRequest(
        media=[media_pb2.MediaRef(path=f"{i}.png") for i in range(4)], content_hash=True
    )
    replies = []
    async with processing(PROCESSING_CACHE="true") as svc:  # CACHE_ADDR: a port nobody listens on
        for i, image in enumerate(data):
            svc.put(f"{i}.png", image)
        replies += [await svc.stub.ProbeMany(request) for _ in range(2)]
    (tmp_path / "redis").mkdir()
    with private_redis(tmp_path / "redis") as redis_server:
        async with (
            running_cache("redis", redis_url=redis_server.url, CACHE_REDIS_TIMEOUT="3s") as cache,
            processing(
                PROCESSING_CACHE="true", CACHE_ADDR=cache.server.address, PROCESSING_CACHE_TIMEOUT="0.2"
            ) as svc,
        ):
            assert redis_server.popen is not None
            redis_server.popen.send_signal(signal.SIGSTOP)
            try:
                replies += [await svc.stub.ProbeMany(request) for _ in range(2)]
            finally:
                redis_server.popen.send_signal(signal.SIGCONT)
    for reply in replies:
        assert [(r.info.width, r.info.height) for r in reply.results] == [(50 + i, 40) for i in range(4)]
    warnings = [r.getMessage() for r in caplog.records if r.name == "mediasuite.processing.cache"]
    assert len(warnings) == 2
    assert "UNAVAILABLE" in warnings[0]
    assert "DEADLINE_EXCEEDED" in warnings[1]


async def test_calls_succeed_when_the_cache_is_unreachable(
    processing: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mediasuite.processing.cache")
    async with processing(PROCESSING_CACHE="true") as svc:  # CACHE_ADDR: a port nobody listens on
        path = svc.put("a.jpg", PHOTO)
        replies = [await svc.stub.Thumbnail(_thumb(path)) for _ in range(6)]
    assert all(r.output.width == 64 and not r.operation.cached for r in replies)
    warnings = [r for r in caplog.records if r.name == "mediasuite.processing.cache"]
    assert len(warnings) == 1
    assert "UNAVAILABLE" in warnings[0].getMessage()


async def test_repeats_hit_the_real_cache_service(processing: Factory, tmp_path: Path) -> None:
    with service_process("cache", tmp_path) as cache:
        async with processing(PROCESSING_CACHE="true", CACHE_ADDR=cache.address) as svc:
            path = svc.put("a.jpg", PHOTO)
            first = await svc.stub.Thumbnail(_thumb(path))
            second = await svc.stub.Thumbnail(_thumb(path))
            # inline: media_metadata is freshness-checked, and the cache has no media root of ours here
            probe = pb.ProbeRequest(media=media_pb2.MediaRef(inline=PHOTO), content_hash=True)
            probed = [await svc.stub.Probe(probe) for _ in range(2)]
        async with grpc.aio.insecure_channel(cache.address) as channel:
            stats = await cache_service_pb2_grpc.CacheServiceStub(channel).GetStats(
                cache_service_pb2.GetStatsRequest(), timeout=5
            )
    assert not first.operation.cached
    assert second.operation.cached
    assert second.output.inline == first.output.inline
    assert [p.operation.cached for p in probed] == [False, True]
    by_name = {n.namespace: n for n in stats.namespaces}
    assert by_name["thumbnail"].hits >= 1
    assert by_name["thumbnail"].sets >= 1
    assert by_name["media_metadata"].hits >= 1
