"""The memory backend: byte budget with LRU eviction, TTLs honoured, leases, source index."""

from __future__ import annotations

from services.cache.backend import Write
from services.cache.memory import ENTRY_OVERHEAD, MemoryBackend


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _write(
    key: str, size: int = 100, ttl_ms: int = 60_000, source: str | None = None, nx: bool = False
) -> Write:
    return Write(key, b"v" * size, ttl_ms, size, size, source, nx)


async def test_least_recently_used_entries_are_evicted_beyond_the_budget() -> None:
    cost = 1000 + 2 + ENTRY_OVERHEAD
    memory = MemoryBackend(budget_bytes=cost * 3)
    for key in ("k1", "k2", "k3"):
        await memory.set_many("ns", [_write(key, 1000)])
    assert await memory.get("ns", "k1") is not None  # k1 is now the most recent
    await memory.set_many("ns", [_write("k4", 1000)])
    assert await memory.get("ns", "k2") is None  # the least recent went
    assert [await memory.get("ns", k) is not None for k in ("k1", "k3", "k4")] == [True, True, True]
    assert memory.evictions("ns") == 1
    assert memory.used_bytes <= memory.budget_bytes
    usage = await memory.usage("ns")
    assert (usage.entries, usage.raw_bytes) == (3, 3000)


async def test_a_value_larger_than_the_budget_is_not_kept_and_does_not_flush_the_rest() -> None:
    memory = MemoryBackend(budget_bytes=10_000)
    await memory.set_many("ns", [_write("small", 100)])
    await memory.set_many("ns", [_write("huge", 20_000)])
    assert await memory.get("ns", "huge") is None
    assert await memory.get("ns", "small") is not None
    assert memory.evictions("ns") == 1


async def test_ttls_are_honoured() -> None:
    clock = Clock()
    memory = MemoryBackend(budget_bytes=1 << 20, clock=clock)
    await memory.set_many("ns", [_write("short", ttl_ms=1000), _write("long", ttl_ms=10_000)])
    clock.now += 0.999
    assert await memory.get("ns", "short") is not None
    clock.now += 0.002
    assert await memory.get("ns", "short") is None
    assert await memory.get("ns", "long") is not None
    assert (await memory.usage("ns")).entries == 1
    clock.now += 10
    # Expired entries also leave on writes and usage counts, even when nobody reads them.
    await memory.set_many("other", [_write("x")])
    assert (await memory.usage("ns")).entries == 0
    assert memory.used_bytes == 1 + 100 + ENTRY_OVERHEAD


async def test_overwrites_do_not_grow_the_expiry_heap_without_bound() -> None:
    memory = MemoryBackend(budget_bytes=1 << 20)
    for _ in range(5000):
        await memory.set_many("ns", [_write("same")])
    assert len(memory._heap) < 2 * 1 + 1024 + 2


async def test_only_if_absent() -> None:
    memory = MemoryBackend(budget_bytes=1 << 20)
    assert await memory.set_many("ns", [_write("k", 10)]) == [True]
    assert await memory.set_many("ns", [_write("k", 20, nx=True), _write("j", 5, nx=True)]) == [False, True]
    assert await memory.get("ns", "k") == b"v" * 10


async def test_delete_many_counts_existing_keys_once() -> None:
    memory = MemoryBackend(budget_bytes=1 << 20)
    await memory.set_many("ns", [_write("a"), _write("b")])
    assert await memory.delete_many("ns", ["a", "a", "missing", "b"]) == 2
    assert (await memory.usage("ns")).entries == 0
    assert memory.used_bytes == 0


async def test_delete_by_source_and_matching() -> None:
    memory = MemoryBackend(budget_bytes=1 << 20)
    await memory.set_many(
        "ns",
        [
            _write("thumb:1", source="a.jpg"),
            _write("thumb:2", source="a.jpg"),
            _write("meta:1", source="b.jpg"),
            _write("meta:2"),
        ],
    )
    await memory.set_many("other", [_write("thumb:1", source="a.jpg")])
    assert await memory.delete_by_source("ns", "a.jpg") == 2
    assert await memory.get("other", "thumb:1") is not None
    # An entry overwritten without the source is not deleted by it.
    await memory.set_many("ns", [_write("x", source="c.jpg")])
    await memory.set_many("ns", [_write("x")])
    assert await memory.delete_by_source("ns", "c.jpg") == 0
    assert await memory.delete_matching("ns", "meta:*") == 2
    assert memory.keys("ns") == ["x"]


async def test_leases_are_exclusive_until_released_or_lapsed() -> None:
    clock = Clock()
    memory = MemoryBackend(budget_bytes=1 << 20, clock=clock)
    assert await memory.acquire_lease("ns", "k", "t1", 1000)
    assert not await memory.acquire_lease("ns", "k", "t2", 1000)
    assert await memory.lease_ttl_ms("ns", "k") == 1000
    assert not await memory.release_lease("ns", "k", "t2")
    assert await memory.release_lease("ns", "k", "t1")
    assert await memory.acquire_lease("ns", "k", "t3", 1000)
    clock.now += 1.5
    assert await memory.lease_ttl_ms("ns", "k") is None
    assert await memory.acquire_lease("ns", "k", "t4", 1000)
    assert not await memory.release_lease("ns", "k", "t3")
