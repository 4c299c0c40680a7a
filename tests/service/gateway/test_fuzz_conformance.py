"""Fuzzing with schemathesis against the gateway in front of test servicers that answer for real,
so successful responses are checked against the OpenAPI document's schemas (and every other
answer is a deliberate status: 2xx, 4xx, or 501 for RPCs the servicers leave out)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import content_type_conformance, response_schema_conformance
from schemathesis.core.failures import FailureGroup

from mediasuite.batch.v1 import batch_service_pb2_grpc, catalog_service_pb2_grpc
from mediasuite.cache.v1 import cache_service_pb2_grpc
from mediasuite.monitor.v1 import monitor_service_pb2_grpc
from mediasuite.processing.v1 import processing_service_pb2_grpc
from tests.conftest import ServerFactory
from tests.support.gateway import (
    ColourThumbnails,
    EchoCache,
    LiveMonitor,
    SmallCatalog,
    StepBatches,
    binding,
    make,
    running_gateway,
)

pytestmark = pytest.mark.slow


def _fuzz(base_url: str, document: dict[str, Any], examples: int) -> list[str]:
    """Runs in a worker thread: schemathesis' client is blocking, the servers live on the test's loop."""
    schema = schemathesis.openapi.from_dict(document)
    problems: list[str] = []
    answered: dict[int, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        if "stream" in operation.definition.raw["description"]:
            continue  # live streams never end; they have their own tests
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case: Any) -> None:
                response = case.call(base_url=base_url, timeout=20)
                answered[response.status_code] = answered.get(response.status_code, 0) + 1
                if response.status_code >= 500 and response.status_code != 501:
                    problems.append(
                        f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}"
                    )
                    return
                try:
                    case.validate_response(
                        response, checks=[response_schema_conformance, content_type_conformance]
                    )
                except (AssertionError, FailureGroup) as failure:
                    problems.append(f"{case.method} {case.formatted_path}: {failure!r}"[:400])

            try:
                call()
            except Unsatisfiable:
                if mode is schemathesis.GenerationMode.POSITIVE:
                    problems.append(f"{operation.label}: no valid request could be generated")
    assert answered.get(200, 0) > 50, f"too few successful calls to check the response schemas: {answered}"
    return problems


async def test_responses_match_the_openapi_document(grpc_server: ServerFactory) -> None:
    servicers: list[tuple[str, Callable[..., None], Any]] = [
        (
            "mediasuite.cache.v1.CacheService",
            cache_service_pb2_grpc.add_CacheServiceServicer_to_server,
            make(EchoCache),
        ),
        (
            "mediasuite.monitor.v1.MonitorService",
            monitor_service_pb2_grpc.add_MonitorServiceServicer_to_server,
            make(LiveMonitor),
        ),
        (
            "mediasuite.batch.v1.CatalogService",
            catalog_service_pb2_grpc.add_CatalogServiceServicer_to_server,
            make(SmallCatalog),
        ),
        (
            "mediasuite.processing.v1.ProcessingService",
            processing_service_pb2_grpc.add_ProcessingServiceServicer_to_server,
            make(ColourThumbnails),
        ),
        (
            "mediasuite.batch.v1.BatchService",
            batch_service_pb2_grpc.add_BatchServiceServicer_to_server,
            make(StepBatches, 0.01),
        ),
    ]
    bindings = [binding(name, add, servicer) for name, add, servicer in servicers]
    async with grpc_server(bindings) as server:
        upstreams = {name: server.address for name in ("cache", "monitor", "batch", "processing")}
        async with running_gateway(upstreams) as gateway:
            from gateway.openapi import build_openapi

            document = build_openapi(gateway.table, auth=False)
            document["servers"] = [{"url": gateway.url}]
            examples = int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "12"))
            problems = await asyncio.to_thread(_fuzz, gateway.url, document, examples)
    assert problems == [], "\n".join(problems[:15])
