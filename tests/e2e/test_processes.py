"""Each of the five processes starts from its console script, reports SERVING, lists its services
over reflection, answers every RPC without crashing, refuses bad configuration, and stops cleanly."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import mediasuite.batch.v1.batch_service_pb2
import mediasuite.batch.v1.catalog_service_pb2
import mediasuite.cache.v1.cache_service_pb2
import mediasuite.monitor.v1.monitor_service_pb2
import mediasuite.processing.v1.processing_service_pb2  # noqa: F401 (registers the descriptors)
from services.runtime.suite import PROCESSES, Process
from tests.support.processes import BIN, base_env, health_status, service_process

HEALTH = "grpc.health.v1.Health"


def _listed_services(address: str) -> set[str]:
    with grpc.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        replies = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    return {s.name for s in replies[0].list_services_response.service}


@pytest.mark.parametrize("proc", PROCESSES, ids=lambda p: p.name)
def test_process_serves_health_and_reflection_and_stops_with_exit_0(proc: Process, tmp_path: Path) -> None:
    with service_process(proc.name, tmp_path) as running:
        for service in ("", *proc.services):
            assert health_status(running.address, service) == "SERVING"
        assert health_status(running.address, "no.such.Service") == "NOT_FOUND"
        assert {*proc.services, HEALTH} <= _listed_services(running.address)
        assert running.stop() == 0
        log = running.log()
    assert '"message": "serving' in log
    assert '"message": "stopped after' in log


@pytest.mark.parametrize("proc", [p for p in PROCESSES if p.services], ids=lambda p: p.name)
def test_every_rpc_with_an_empty_request_gets_a_deliberate_status(proc: Process, tmp_path: Path) -> None:
    """No RPC may answer INTERNAL or UNKNOWN to an empty request, nor UNIMPLEMENTED: all are built."""
    outcomes: dict[str, tuple[grpc.StatusCode, str]] = {}
    with service_process(proc.name, tmp_path) as running, grpc.insecure_channel(running.address) as channel:
        for service_name in proc.services:
            service = descriptor_pool.Default().FindServiceByName(service_name)
            for method in service.methods:
                path = f"/{service_name}/{method.name}"
                request_class = message_factory.GetMessageClass(method.input_type)
                response_class = message_factory.GetMessageClass(method.output_type)
                kwargs: dict[str, Any] = {
                    "request_serializer": request_class.SerializeToString,
                    "response_deserializer": response_class.FromString,
                }
                try:
                    if method.client_streaming:
                        channel.stream_unary(path, **kwargs)(iter([request_class()]), timeout=3)
                    elif method.server_streaming:
                        for _ in channel.unary_stream(path, **kwargs)(request_class(), timeout=3):
                            break
                    else:
                        channel.unary_unary(path, **kwargs)(request_class(), timeout=3)
                except grpc.RpcError as error:
                    outcomes[path] = (error.code(), error.details() or "")
        assert health_status(running.address) == "SERVING"
    crashed = {
        p: o for p, o in outcomes.items() if o[0] in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
    }
    assert not crashed
    unbuilt = {p: o for p, o in outcomes.items() if o[0] == grpc.StatusCode.UNIMPLEMENTED}
    assert not unbuilt, "every RPC of the contract is served"


@pytest.mark.parametrize(
    ("proc", "variable", "value"),
    [
        ("cache", "CACHE_LISTEN", "nowhere"),
        ("cache", "REDIS_URL", "http://redis"),
        ("processing", "SHUTDOWN_GRACE", "soon"),
        ("batch", "GRPC_MAX_MESSAGE_BYTES", "lots"),
        ("monitor", "LOG_LEVEL", "loud"),
        ("gateway", "GATEWAY_HTTP_LISTEN", "8080"),
        ("gateway", "OTEL_TRACES_EXPORTER", "jaeger"),
    ],
)
def test_bad_environment_value_exits_2_naming_the_variable(proc: str, variable: str, value: str) -> None:
    result = subprocess.run(
        [str(BIN / f"mediasuite-{proc}")],
        env=base_env(**{variable: value}),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert f"{variable} is {value!r}: expected" in result.stderr
    assert result.stdout == ""


def test_help_lists_every_variable(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "mediasuite-cache"), "--help"], capture_output=True, text=True, timeout=30, check=True
    )
    for variable in ("CACHE_LISTEN", "REDIS_URL", "SHUTDOWN_GRACE", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        assert variable in result.stdout
