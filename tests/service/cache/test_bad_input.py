"""Bad input gets a clear status naming the field or the limit, and changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2

from mediasuite.cache.v1 import cache_service_pb2 as pb
from mediasuite.common.v1 import media_pb2
from tests.support.cache import RunningCache
from tests.support.grpc_errors import detail

NS = "thumbnail"


async def _fails(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def _field(error: grpc.aio.AioRpcError) -> str:
    bad = detail(error, error_details_pb2.BadRequest)
    assert bad is not None, f"no BadRequest detail in {error.details()}"
    return str(bad.field_violations[0].field)


def _limit(error: grpc.aio.AioRpcError) -> dict[str, str]:
    info = detail(error, error_details_pb2.ErrorInfo)
    assert info is not None
    assert info.reason == "LIMIT_EXCEEDED"
    return dict(info.metadata)


async def test_empty_key(cache: RunningCache) -> None:
    for call in (
        cache.stub.Get(pb.GetRequest(namespace=NS, key="")),
        cache.stub.Set(pb.SetRequest(namespace=NS, key="", value=b"v")),
        cache.stub.Delete(pb.DeleteRequest(namespace=NS, key="")),
    ):
        error = await _fails(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details() == "key must not be empty"
        assert _field(error) == "key"
    error = await _fails(cache.stub.GetMany(pb.GetManyRequest(namespace=NS, keys=["a", "b", ""])))
    assert _field(error) == "keys[2]"


async def test_oversized_key_names_the_limit(cache: RunningCache) -> None:
    error = await _fails(cache.stub.Set(pb.SetRequest(namespace=NS, key="k" * 1025, value=b"v")))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.details() == (
        "key bytes (1025) exceeds the limit max_key_bytes=1024; raise CACHE_MAX_KEY_BYTES to allow more"
    )
    assert _limit(error) == {
        "limit": "max_key_bytes",
        "maximum": "1024",
        "actual": "1025",
        "env": "CACHE_MAX_KEY_BYTES",
    }
    # Multi-byte characters count as bytes: 300 four-byte characters are 1200 bytes.
    error = await _fails(cache.stub.Get(pb.GetRequest(namespace=NS, key="🙂" * 300)))
    assert _limit(error)["actual"] == "1200"
    # Exactly at the limit is fine.
    await cache.stub.Set(pb.SetRequest(namespace=NS, key="k" * 1024, value=b"v"))


async def test_oversized_value_names_the_limit(cache: RunningCache) -> None:
    value = b"\x00" * (8 * 1024 * 1024 + 1)
    error = await _fails(cache.stub.Set(pb.SetRequest(namespace=NS, key="big", value=value)))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "max_value_bytes=8388608" in (error.details() or "")
    assert "CACHE_MAX_VALUE_BYTES" in (error.details() or "")
    assert _limit(error)["actual"] == str(len(value))
    many = pb.SetManyRequest(
        namespace=NS, entries=[pb.SetManyEntry(key="ok", value=b"v"), pb.SetManyEntry(key="big", value=value)]
    )
    error = await _fails(cache.stub.SetMany(many))
    assert "entries[1].value bytes" in (error.details() or "")
    # Nothing of the refused call was stored.
    got = await cache.stub.GetMany(pb.GetManyRequest(namespace=NS, keys=["ok", "big"]))
    assert [r.found for r in got.results] == [False, False]


async def test_too_many_keys_in_one_call(cache: RunningCache) -> None:
    error = await _fails(
        cache.stub.GetMany(pb.GetManyRequest(namespace=NS, keys=[f"k{i}" for i in range(1001)]))
    )
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _limit(error) == {
        "limit": "max_keys_per_call",
        "maximum": "1000",
        "actual": "1001",
        "env": "CACHE_MAX_KEYS_PER_CALL",
    }
    error = await _fails(cache.stub.DeleteMany(pb.DeleteManyRequest(namespace=NS, keys=["k"] * 1001)))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_unknown_namespace_lists_the_known_ones(cache: RunningCache) -> None:
    for call in (
        cache.stub.Get(pb.GetRequest(namespace="thumbnails", key="k")),
        cache.stub.Invalidate(pb.InvalidateRequest(namespace="thumbnails", prefix="")),
        cache.stub.GetStats(pb.GetStatsRequest(namespace="thumbnails")),
        cache.stub.GetOrLease(pb.GetOrLeaseRequest(namespace="thumbnails", key="k")),
    ):
        error = await _fails(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        details = error.details() or ""
        assert "unknown namespace 'thumbnails'" in details
        assert "thumbnail, format_conversion" in details
    error = await _fails(cache.stub.Get(pb.GetRequest(namespace="", key="k")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _field(error) == "namespace"


async def test_ttl_above_the_maximum_or_not_positive(cache: RunningCache) -> None:
    error = await _fails(
        cache.stub.Set(
            pb.SetRequest(
                namespace="bulk_operation_result", key="k", value=b"v", ttl=duration_pb2.Duration(seconds=901)
            )
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _field(error) == "ttl"
    assert "exceeds the maximum of namespace 'bulk_operation_result' (900s)" in (error.details() or "")
    for ttl in (duration_pb2.Duration(seconds=0), duration_pb2.Duration(seconds=-5)):
        error = await _fails(cache.stub.Set(pb.SetRequest(namespace=NS, key="k", value=b"v", ttl=ttl)))
        assert _field(error) == "ttl"
    entry = pb.SetManyEntry(key="k", value=b"v", ttl=duration_pb2.Duration(seconds=10**7))
    error = await _fails(cache.stub.SetMany(pb.SetManyRequest(namespace=NS, entries=[entry])))
    assert _field(error) == "entries[0].ttl"
    assert not (await cache.stub.Get(pb.GetRequest(namespace=NS, key="k"))).found


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("photo[", "unclosed"),
        ("a]", "unmatched"),
        ("x\\", "lone backslash"),
        ("", "must not be empty"),
        ("[]", "empty"),
    ],
)
async def test_invalid_pattern(cache: RunningCache, pattern: str, says: str) -> None:
    error = await _fails(cache.stub.Invalidate(pb.InvalidateRequest(namespace=NS, pattern=pattern)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _field(error) == "pattern"
    assert says in (error.details() or "")


async def test_invalidate_needs_a_selector(cache: RunningCache) -> None:
    error = await _fails(cache.stub.Invalidate(pb.InvalidateRequest(namespace=NS)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "exactly one of prefix, pattern or source_path" in (error.details() or "")


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.jpg", "a/../../b.jpg", "dir\\..\\x.jpg"])
async def test_fingerprint_paths_must_stay_under_the_media_root(cache: RunningCache, path: str) -> None:
    fp = media_pb2.SourceFingerprint(path=path, size_bytes=1, mtime_ns=1)
    error = await _fails(cache.stub.Set(pb.SetRequest(namespace=NS, key="k", value=b"v", fingerprint=fp)))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "relative to the media root" in (error.details() or "")
    error = await _fails(cache.stub.Invalidate(pb.InvalidateRequest(namespace=NS, source_path=path)))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("content_hash", ["deadbeef", "sha256:xyz", "rot13:" + "ab" * 16, "sha256:"])
async def test_malformed_content_hash(cache: RunningCache, content_hash: str) -> None:
    fp = media_pb2.SourceFingerprint(path="a.jpg", content_hash=content_hash)
    error = await _fails(cache.stub.Set(pb.SetRequest(namespace=NS, key="k", value=b"v", fingerprint=fp)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _field(error) == "fingerprint.content_hash"


async def test_verify_source_without_a_media_root(cache: RunningCache) -> None:
    error = await _fails(cache.stub.Get(pb.GetRequest(namespace=NS, key="k", verify_source=True)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "CACHE_MEDIA_ROOT" in (error.details() or "")


async def test_bad_lease_arguments(cache: RunningCache) -> None:
    error = await _fails(
        cache.stub.GetOrLease(
            pb.GetOrLeaseRequest(namespace=NS, key="k", lease_ttl=duration_pb2.Duration(seconds=-1))
        )
    )
    assert _field(error) == "lease_ttl"
    error = await _fails(cache.stub.ReleaseLease(pb.ReleaseLeaseRequest(namespace=NS, key="k")))
    assert _field(error) == "lease_token"


async def test_overlong_content_type(cache: RunningCache) -> None:
    error = await _fails(
        cache.stub.Set(pb.SetRequest(namespace=NS, key="k", value=b"v", content_type="x" * 300))
    )
    assert _field(error) == "content_type"
