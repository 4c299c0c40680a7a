"""The collection summary is served through the cache service's collection_summary namespace and
invalidated by every catalog change; without a working cache it is computed, never refused."""

from __future__ import annotations

from pathlib import Path

from mediasuite.batch.v1 import batch_service_pb2 as bpb
from mediasuite.batch.v1 import catalog_service_pb2 as cpb
from mediasuite.cache.v1 import cache_service_pb2
from tests.service.batch.conftest import Factory, Suite
from tests.support.batch import finished, make_tree, run_batch
from tests.support.cache import running_cache
from tests.support.processes import service_process


async def _import_and_tag(suite: Suite) -> tuple[cpb.GetSummaryResponse, ...]:
    paths = make_tree(suite.media, images=15)
    spec = bpb.BatchSpec(import_directory=bpb.ImportOperation(directory="library", recursive=True))
    assert finished(await run_batch(suite.batch, spec)).done == 15
    first = await suite.catalog.GetSummary(cpb.GetSummaryRequest())
    second = await suite.catalog.GetSummary(cpb.GetSummaryRequest())
    trash = bpb.BatchSpec(
        catalog=bpb.CatalogOperation(action=bpb.CATALOG_ACTION_TRASH),
        selection=bpb.Selection(paths=bpb.MediaPaths(paths=paths[:5])),
    )
    assert finished(await run_batch(suite.batch, trash)).done == 5
    third = await suite.catalog.GetSummary(cpb.GetSummaryRequest())
    fourth = await suite.catalog.GetSummary(cpb.GetSummaryRequest())
    return first, second, third, fourth


def _same_counts(a: cpb.GetSummaryResponse, b: cpb.GetSummaryResponse) -> bool:
    a, b = (
        cpb.GetSummaryResponse.FromString(a.SerializeToString()),
        cpb.GetSummaryResponse.FromString(b.SerializeToString()),
    )
    for message in (a, b):
        message.ClearField("cached")
        message.ClearField("computed_at")
    return a == b


async def test_summary_goes_through_the_cache_and_every_change_invalidates_it(batch_suite: Factory) -> None:
    async with (
        running_cache("memory") as cache,
        batch_suite(CACHE_ADDR=cache.server.address) as suite,
    ):
        first, second, third, fourth = await _import_and_tag(suite)
        stats = await cache.stub.GetStats(cache_service_pb2.GetStatsRequest())
    assert (first.cached, second.cached, third.cached, fourth.cached) == (False, True, False, True)
    assert _same_counts(first, second)
    assert _same_counts(third, fourth)
    assert second.computed_at == first.computed_at  # served as computed, from the cache
    assert (first.total.count, third.total.count) == (15, 10)
    assert third.by_status["trashed"].count == 5
    assert third.by_status["pending"].count == 10
    assert sum(b.count for b in third.by_format.values()) == 10
    assert sum(b.bytes for b in third.by_format.values()) == third.total.bytes
    used = {n.namespace: n for n in stats.namespaces if n.hits or n.misses or n.sets or n.deletes}
    assert set(used) == {"collection_summary"}
    summaries = used["collection_summary"]
    assert (summaries.misses, summaries.hits, summaries.sets) == (2, 2, 2)
    assert summaries.deletes >= 1, "the trash batch's invalidation dropped the first summary"


async def test_summary_against_the_real_cache_process(batch_suite: Factory, tmp_path: Path) -> None:
    with service_process("cache", tmp_path) as cache:
        async with batch_suite(CACHE_ADDR=cache.address) as suite:
            first, second, third, fourth = await _import_and_tag(suite)
    assert (first.total.count, third.total.count) == (15, 10)
    assert _same_counts(first, second)
    assert _same_counts(third, fourth)
    assert (first.cached, second.cached, third.cached, fourth.cached) == (False, True, False, True)


async def test_without_a_reachable_cache_the_summary_is_computed_not_refused(batch_suite: Factory) -> None:
    async with batch_suite() as suite:  # CACHE_ADDR: a port nobody listens on
        first, second, third, fourth = await _import_and_tag(suite)
    assert (first.cached, second.cached, third.cached, fourth.cached) == (False, False, False, False)
    assert (first.total.count, third.total.count) == (15, 10)
    assert _same_counts(first, second)
    assert _same_counts(third, fourth)
