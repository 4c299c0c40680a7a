"""Freshness: an entry made from a file is never served once the file changed."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mediasuite.cache.v1 import cache_service_pb2 as pb
from mediasuite.common.v1 import media_pb2
from tests.support.cache import RunningCache, running_cache


@pytest.fixture(params=["redis", "memory"])
async def media_cache(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[RunningCache, Path]]:
    root = tmp_path / "media"
    (root / "albums").mkdir(parents=True)
    async with running_cache(request.param, CACHE_MEDIA_ROOT=str(root)) as cache:
        yield cache, root


def _fingerprint(root: Path, relative: str, with_hash: bool = False) -> media_pb2.SourceFingerprint:
    path = root / relative
    stat = path.stat()
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() if with_hash else ""
    return media_pb2.SourceFingerprint(
        path=relative, size_bytes=stat.st_size, mtime_ns=stat.st_mtime_ns, content_hash=digest
    )


def _touch_later(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


async def test_modified_file_makes_a_stale_miss_and_the_entry_is_deleted(
    media_cache: tuple[RunningCache, Path],
) -> None:
    cache, root = media_cache
    source = root / "albums" / "a.jpg"
    source.write_bytes(b"\xff\xd8original")
    fp = _fingerprint(root, "albums/a.jpg")
    await cache.stub.Set(pb.SetRequest(namespace="thumbnail", key="a:small", value=b"thumb", fingerprint=fp))

    fresh = await cache.stub.Get(pb.GetRequest(namespace="thumbnail", key="a:small", verify_source=True))
    assert fresh.found
    assert fresh.info.fingerprint == fp

    source.write_bytes(b"\xff\xd8edited in place")
    stale = await cache.stub.Get(pb.GetRequest(namespace="thumbnail", key="a:small", verify_source=True))
    assert (stale.found, stale.miss_reason, stale.value) == (False, pb.MISS_REASON_STALE, b"")
    after = await cache.stub.Get(pb.GetRequest(namespace="thumbnail", key="a:small"))
    assert (after.found, after.miss_reason) == (False, pb.MISS_REASON_ABSENT)

    stats = await cache.stub.GetStats(pb.GetStatsRequest(namespace="thumbnail"))
    row = stats.namespaces[0]
    assert (row.hits, row.misses, row.stale_misses, row.entries) == (1, 2, 1, 0)


async def test_a_stated_fingerprint_decides_without_the_file(media_cache: tuple[RunningCache, Path]) -> None:
    cache, _ = media_cache
    old = media_pb2.SourceFingerprint(path="albums/gone.jpg", size_bytes=100, mtime_ns=1)
    await cache.stub.Set(pb.SetRequest(namespace="image_analysis", key="gone", value=b"v", fingerprint=old))
    same = await cache.stub.Get(pb.GetRequest(namespace="image_analysis", key="gone", fingerprint=old))
    assert same.found
    newer = media_pb2.SourceFingerprint(path="albums/gone.jpg", size_bytes=100, mtime_ns=2)
    stale = await cache.stub.Get(pb.GetRequest(namespace="image_analysis", key="gone", fingerprint=newer))
    assert stale.miss_reason == pb.MISS_REASON_STALE


async def test_freshness_checked_namespace_checks_every_get(media_cache: tuple[RunningCache, Path]) -> None:
    cache, root = media_cache
    source = root / "albums" / "b.jpg"
    source.write_bytes(b"v1")
    fp = _fingerprint(root, "albums/b.jpg")
    await cache.stub.Set(pb.SetRequest(namespace="media_metadata", key="b", value=b"{}", fingerprint=fp))
    assert (await cache.stub.Get(pb.GetRequest(namespace="media_metadata", key="b"))).found
    _touch_later(source)
    stale = await cache.stub.Get(pb.GetRequest(namespace="media_metadata", key="b"))
    assert stale.miss_reason == pb.MISS_REASON_STALE


async def test_touched_file_with_the_same_content_hash_stays_fresh(
    media_cache: tuple[RunningCache, Path],
) -> None:
    cache, root = media_cache
    source = root / "albums" / "c.jpg"
    source.write_bytes(b"same bytes")
    fp = _fingerprint(root, "albums/c.jpg", with_hash=True)
    await cache.stub.Set(pb.SetRequest(namespace="media_metadata", key="c", value=b"{}", fingerprint=fp))
    _touch_later(source)
    assert (await cache.stub.Get(pb.GetRequest(namespace="media_metadata", key="c"))).found
    source.write_bytes(b"other bytes")
    stale = await cache.stub.Get(pb.GetRequest(namespace="media_metadata", key="c"))
    assert stale.miss_reason == pb.MISS_REASON_STALE


async def test_deleted_file_and_symlink_out_of_the_root_are_stale(
    media_cache: tuple[RunningCache, Path], tmp_path: Path
) -> None:
    cache, root = media_cache
    (root / "albums" / "d.jpg").write_bytes(b"d")
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"e")
    (root / "albums" / "e.jpg").symlink_to(outside)
    for name in ("d", "e"):
        fp = _fingerprint(root, f"albums/{name}.jpg")
        await cache.stub.Set(pb.SetRequest(namespace="thumbnail", key=name, value=b"v", fingerprint=fp))
    (root / "albums" / "d.jpg").unlink()
    for name in ("d", "e"):
        got = await cache.stub.Get(pb.GetRequest(namespace="thumbnail", key=name, verify_source=True))
        assert got.miss_reason == pb.MISS_REASON_STALE


async def test_get_many_with_fingerprints_and_freshness_checks(
    media_cache: tuple[RunningCache, Path],
) -> None:
    cache, root = media_cache
    for name in ("f", "g", "h"):
        (root / "albums" / f"{name}.jpg").write_bytes(name.encode())
    entries = [
        pb.SetManyEntry(
            key=name, value=name.encode() * 2000, fingerprint=_fingerprint(root, f"albums/{name}.jpg")
        )
        for name in ("f", "g", "h")
    ]
    entries.append(pb.SetManyEntry(key="plain", value=b"no source"))
    await cache.stub.SetMany(pb.SetManyRequest(namespace="media_metadata", entries=entries))
    _touch_later(root / "albums" / "g.jpg")  # checked against the file: stale
    stated = {
        "h": media_pb2.SourceFingerprint(path="albums/h.jpg", size_bytes=99, mtime_ns=1)
    }  # stated: stale
    got = await cache.stub.GetMany(
        pb.GetManyRequest(
            namespace="media_metadata", keys=["f", "g", "h", "plain", "none"], fingerprints=stated
        )
    )
    assert [(r.key, r.found, r.miss_reason) for r in got.results] == [
        ("f", True, pb.MISS_REASON_UNSPECIFIED),
        ("g", False, pb.MISS_REASON_STALE),
        ("h", False, pb.MISS_REASON_STALE),
        ("plain", True, pb.MISS_REASON_UNSPECIFIED),
        ("none", False, pb.MISS_REASON_ABSENT),
    ]
    assert got.results[0].value == b"f" * 2000
    stats = await cache.stub.GetStats(pb.GetStatsRequest(namespace="media_metadata"))
    assert (stats.namespaces[0].stale_misses, stats.namespaces[0].entries) == (2, 2)
