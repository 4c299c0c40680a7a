"""The gateway process in front of the real service processes: every route answers deliberately
(503 when a service is absent, never another 5xx), the OpenAPI document is valid, and a
schemathesis fuzzing pass finds no other 5xx."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate

from tests.support.processes import Running, free_port, service_process

ALLOWED_5XX = {503}  # a dependency of a service unavailable; never 501: every RPC is built


@dataclass
class Suite:
    url: str
    gateway: Running


@contextlib.contextmanager
def suite(tmp_path: Path, *, with_services: bool, **env: str) -> Iterator[Suite]:
    """The gateway process, and (optionally) the four service processes it fronts."""
    with contextlib.ExitStack() as stack:
        addresses: dict[str, str] = {}
        for name in ("cache", "processing", "batch", "monitor"):
            if with_services:
                addresses[f"{name.upper()}_ADDR"] = stack.enter_context(
                    service_process(name, tmp_path)
                ).address
            else:
                addresses[f"{name.upper()}_ADDR"] = f"127.0.0.1:{free_port()}"  # nothing listens there
        http = f"127.0.0.1:{free_port()}"
        gateway = stack.enter_context(
            service_process("gateway", tmp_path, GATEWAY_HTTP_LISTEN=http, **addresses, **env)
        )
        yield Suite(f"http://{http}", gateway)


def _get_routes_without_parameters(document: dict[str, object]) -> list[str]:
    paths = document["paths"]
    assert isinstance(paths, dict)
    return [path for path, ops in paths.items() if "get" in ops and "{" not in path]


def test_every_get_route_without_parameters_answers_200(tmp_path: Path) -> None:
    with (
        suite(tmp_path, with_services=True) as running,
        httpx.Client(base_url=running.url, timeout=10) as client,
    ):
        assert client.get("/healthz").json() == {"status": "SERVING"}
        document = client.get("/openapi.json").json()
        validate(document)
        for path in _get_routes_without_parameters(document):
            reply = client.get(path, headers={"grpc-timeout": "1S"})
            assert reply.status_code == 200, (path, reply.status_code, reply.text[:300])
        assert running.gateway.stop() == 0


def test_absent_upstreams_are_503(tmp_path: Path) -> None:
    with (
        suite(tmp_path, with_services=False) as running,
        httpx.Client(base_url=running.url, timeout=20) as client,
    ):
        reply = client.get("/v1/cache/stats", headers={"grpc-timeout": "2S"})
        assert reply.status_code in (503, 504), reply.text
        assert reply.json()["code"] in (14, 4)
        reply = client.post("/v1/catalog/items:query", json={"pageSize": 5})
        assert reply.status_code == 503, reply.text
        assert reply.json()["code"] == 14
        reply = client.get("/v1/monitor/metrics:stream")
        assert reply.status_code == 503
        assert reply.headers["content-type"] == "application/json"
        assert running.gateway.stop() == 0


@pytest.mark.slow
def test_schemathesis_finds_no_5xx_but_503(tmp_path: Path) -> None:
    examples = int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "12"))
    failures: list[str] = []
    with suite(tmp_path, with_services=True) as running:
        schema = schemathesis.openapi.from_url(f"{running.url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
        assert len(operations) >= 42
        for operation in operations:
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

                @settings(
                    max_examples=examples,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                    derandomize=True,
                )
                @given(case=operation.as_strategy(generation_mode=mode))
                def call(case: Any) -> None:
                    # streams end at the deadline once their services answer them
                    response = case.call(base_url=running.url, headers={"grpc-timeout": "1S"}, timeout=20)
                    status = response.status_code
                    if status >= 500 and status not in ALLOWED_5XX:
                        failures.append(
                            f"{case.method} {case.formatted_path} -> {status}: {response.text[:300]}"
                        )
                    if status >= 400:
                        body = json.loads(response.content)
                        assert set(body) == {"code", "message", "details"}, body

                try:
                    call()
                except Unsatisfiable:
                    # nothing in the operation can be made invalid (no parameters, no body)
                    assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
        assert running.gateway.stop() == 0
        log = running.gateway.log()
    assert not failures, "\n".join(failures[:20])
    assert "Traceback" not in log, log[-3000:]
