"""Malformed field values at every RPC of every service, over real processes: requests built from the
descriptors with every field at an extreme (largest and smallest numbers, NaN and infinities,
1 MiB strings and bytes, strings with NUL and path tricks, unknown enum numbers, thousands of
repeated values, timestamps and durations out of range), nested messages filled the same way.

Each request is sent once with every field extreme at once, then once per field with only that
field set (nested fields too), so a check that comes after another still gets its turn. Every
call ends with a deliberate status (never INTERNAL or UNKNOWN), and every process is still
SERVING afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import opentelemetry.proto.collector.metrics.v1.metrics_service_pb2  # noqa: F401 (registers the descriptors)
import pytest
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from services.runtime.suite import PROCESSES
from tests.support.batch import batch_env, processing_env
from tests.support.processes import Running, health_status, service_process
from tests.support.redis import SHARED_URL, delete_prefix, unique_prefix

pytestmark = pytest.mark.slow

VARIANTS = ("largest", "smallest", "odd")
BIG_STRING = "x" * (1 << 20)
BIG_BYTES = b"\xff" * (1 << 20)
REPEATED = 1000
# Served beside the suite's own services: the monitor's OTLP metrics receiver.
EXTRA_SERVICES = {"monitor": ("opentelemetry.proto.collector.metrics.v1.MetricsService",)}
F = FieldDescriptor
_SIGNED32 = {F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32}
_SIGNED64 = {F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64}
_UNSIGNED32 = {F.TYPE_UINT32, F.TYPE_FIXED32}
_UNSIGNED64 = {F.TYPE_UINT64, F.TYPE_FIXED64}


_NUMBERS: dict[frozenset[int], dict[str, Any]] = {
    frozenset(_SIGNED32): {"largest": 2**31 - 1, "smallest": -(2**31), "odd": -1},
    frozenset(_SIGNED64): {"largest": 2**63 - 1, "smallest": -(2**63), "odd": -1},
    frozenset(_UNSIGNED32): {"largest": 2**32 - 1, "smallest": 0, "odd": 2**31},
    frozenset(_UNSIGNED64): {"largest": 2**64 - 1, "smallest": 0, "odd": 2**63},
    frozenset({F.TYPE_FLOAT, F.TYPE_DOUBLE}): {"largest": math.inf, "smallest": -math.inf, "odd": math.nan},
    frozenset({F.TYPE_BOOL}): {"largest": True, "smallest": False, "odd": True},
    # numbers no enum of the suite has
    frozenset({F.TYPE_ENUM}): {"largest": 999_999, "smallest": -7, "odd": 2**31 - 1},
}
_TEXT: dict[int, dict[str, Any]] = {
    F.TYPE_STRING: {"smallest": "\x00../../etc/passwd", "odd": "é*[?\\" + "\u202e" * 100 + "/.."},
    F.TYPE_BYTES: {"smallest": b"", "odd": b"\x00" * 64},
}


def _scalar(field: FieldDescriptor, variant: str, repeated: bool) -> Any:
    for kinds, values in _NUMBERS.items():
        if field.type in kinds:
            return values[variant]
    if field.type not in _TEXT:
        raise AssertionError(f"unhandled field type {field.type} of {field.full_name}")
    if variant == "largest":
        big: str | bytes = BIG_STRING if field.type == F.TYPE_STRING else BIG_BYTES
        return big[:1024] if repeated else big
    return _TEXT[field.type][variant]


def _nested(field: FieldDescriptor) -> Descriptor:
    assert field.message_type is not None
    return field.message_type


def malformed(descriptor: Descriptor, variant: str, depth: int = 0) -> Message:
    """A message of ``descriptor`` with every field set to the variant's extreme (nested to depth 3)."""
    message = message_factory.GetMessageClass(descriptor)()
    for field in descriptor.fields:
        is_message = field.type == F.TYPE_MESSAGE
        if is_message and _nested(field).GetOptions().map_entry:
            key_field, value_field = (
                _nested(field).fields_by_name["key"],
                _nested(field).fields_by_name["value"],
            )
            target = getattr(message, field.name)
            for index in range(3):
                key = _scalar(key_field, variant, True)
                key = f"{key}{index}" if isinstance(key, str) else key
                if value_field.type == F.TYPE_MESSAGE:
                    if depth < 3:
                        target[key].CopyFrom(malformed(_nested(value_field), variant, depth + 1))
                else:
                    target[key] = _scalar(value_field, variant, True)
            continue
        if is_message:
            if depth >= 3:
                continue
            value = malformed(_nested(field), variant, depth + 1)
            if field.is_repeated:
                getattr(message, field.name).extend([value, value])
            else:
                getattr(message, field.name).CopyFrom(value)
            continue
        if field.is_repeated:
            count = REPEATED if variant == "largest" else 3
            getattr(message, field.name).extend([_scalar(field, variant, True)] * count)
        else:
            setattr(message, field.name, _scalar(field, variant, False))
    return message


def one_field_at_a_time(
    descriptor: Descriptor, variant: str, depth: int = 0
) -> Iterator[tuple[str, Message]]:
    """Messages with exactly one leaf field (nested up to depth 2) at the variant's extreme, the
    rest unset: so a field checked after another still gets its turn."""
    cls = message_factory.GetMessageClass(descriptor)
    for field in descriptor.fields:
        if field.type == F.TYPE_MESSAGE and not _nested(field).GetOptions().map_entry:
            if depth >= 2:
                continue
            for path, inner in one_field_at_a_time(_nested(field), variant, depth + 1):
                message = cls()
                if field.is_repeated:
                    getattr(message, field.name).append(inner)
                else:
                    getattr(message, field.name).CopyFrom(inner)
                yield f"{field.name}.{path}", message
            continue
        single = message_factory.GetMessageClass(descriptor)()
        full = malformed(descriptor, variant, depth=3)  # depth 3: scalars and maps only
        if field.type == F.TYPE_MESSAGE:
            getattr(single, field.name).MergeFrom(getattr(full, field.name))
        elif field.is_repeated:
            getattr(single, field.name).extend(getattr(full, field.name))
        else:
            setattr(single, field.name, getattr(full, field.name))
        yield field.name, single


def _call(channel: grpc.Channel, service_name: str, method: Any, request: Message) -> tuple[str, str]:
    path = f"/{service_name}/{method.name}"
    response_class = message_factory.GetMessageClass(method.output_type)
    kwargs: dict[str, Any] = {
        "request_serializer": lambda m: m.SerializeToString(),
        "response_deserializer": response_class.FromString,
    }
    try:
        if method.client_streaming:
            channel.stream_unary(path, **kwargs)(iter([request, request]), timeout=10)
        elif method.server_streaming:
            for _ in channel.unary_stream(path, **kwargs)(request, timeout=3):
                break
        else:
            channel.unary_unary(path, **kwargs)(request, timeout=10)
    except grpc.RpcError as error:
        code = error.code()
        if method.server_streaming and code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return "OK", "a live stream that is still open"
        return code.name, error.details() or ""
    return "OK", ""


@pytest.fixture
def suite(tmp_path: Path) -> Iterator[dict[str, Running]]:
    """Cache, processing, batch and monitor, each its own process, wired to each other."""
    prefix = unique_prefix("fuzzproto")
    media, derived = tmp_path / "media", tmp_path / "derived"
    media.mkdir()
    try:
        with (
            service_process("cache", tmp_path) as cache,
            service_process(
                "processing", tmp_path, **processing_env(media, derived, cache=cache.address)
            ) as processing,
            service_process(
                "batch",
                tmp_path,
                **batch_env(
                    media,
                    derived,
                    redis_url=SHARED_URL,
                    prefix=prefix,
                    processing=processing.address,
                    cache=cache.address,
                ),
            ) as batch,
            service_process("monitor", tmp_path, MONITOR_CHECK="none") as monitor,
        ):
            yield {"cache": cache, "processing": processing, "batch": batch, "monitor": monitor}
    finally:
        delete_prefix(SHARED_URL, prefix)


def test_malformed_values_at_every_rpc_get_a_deliberate_status(suite: dict[str, Running]) -> None:
    crashed: dict[str, tuple[str, str]] = {}
    called = 0
    for proc in PROCESSES:
        if proc.name not in suite:
            continue
        running = suite[proc.name]
        with grpc.insecure_channel(
            running.address, options=[("grpc.max_send_message_length", 256 << 20)]
        ) as channel:
            for service_name in (*proc.services, *EXTRA_SERVICES.get(proc.name, ())):
                service = descriptor_pool.Default().FindServiceByName(service_name)
                for method in service.methods:
                    for variant in VARIANTS:
                        requests = [("every field", malformed(method.input_type, variant))]
                        requests += list(one_field_at_a_time(method.input_type, variant))
                        for what, request in requests:
                            code, details = _call(channel, service_name, method, request)
                            called += 1
                            where = f"{service_name}/{method.name} {what} [{variant}]"
                            if code in ("INTERNAL", "UNKNOWN"):
                                crashed[where] = (code, details[:300])
                            assert running.popen.poll() is None, f"{proc.name} died on {where}"
        assert health_status(running.address) == "SERVING", proc.name
    assert called >= 900
    assert not crashed, crashed
