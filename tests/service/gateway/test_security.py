"""Authentication and scopes, limits, deadlines, request ids, header forwarding, CORS, pages."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from functools import partial

import httpx
import pytest
import websockets
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gateway.app import create_app
from gateway.auth import hash_key
from gateway.routes import Upstream, build_routes
from gateway.upstream import Upstreams
from mediasuite.cache.v1 import cache_service_pb2_grpc
from services.runtime.server import ServiceBinding
from services.runtime.telemetry import Telemetry
from tests.conftest import ServerFactory
from tests.support.fakes import SleepyCache
from tests.support.gateway import EchoState, echo_binding, echo_service, gateway_config, running_gateway

READ_KEY = "msk_read-key-for-tests-0123456789abcdef"
ADMIN_KEY = "msk_admin-key-for-tests-0123456789abcdef"
KEYS = f"viewer:read:{hash_key(READ_KEY)},ops:admin:{hash_key(ADMIN_KEY)}"


@pytest.fixture
async def upstream(grpc_server: ServerFactory) -> AsyncIterator[str]:
    cache = ServiceBinding(
        "mediasuite.cache.v1.CacheService",
        partial(cache_service_pb2_grpc.add_CacheServiceServicer_to_server, SleepyCache()),  # type: ignore[abstract]
    )
    async with grpc_server([echo_binding(EchoState()), cache]) as server:
        yield server.address


async def test_no_key_401_read_key_on_admin_route_403_admin_key_200(upstream: str) -> None:
    async with (
        running_gateway({"echo": upstream}, echo=True, GATEWAY_API_KEYS=KEYS) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as client,
    ):
        reply = await client.get("/v1/echo")
        assert reply.status_code == 401
        assert reply.json()["code"] == 16
        assert reply.headers["www-authenticate"].startswith("Bearer")

        reply = await client.get("/v1/echo", headers={"authorization": "Bearer msk_wrong"})
        assert reply.status_code == 401
        assert 'error="invalid_token"' in reply.headers["www-authenticate"]

        read = {"authorization": f"Bearer {READ_KEY}"}
        assert (await client.get("/v1/echo", headers=read)).status_code == 200
        assert (await client.get("/v1/echo", headers={"x-api-key": READ_KEY})).status_code == 200

        reply = await client.put("/v1/shelves/s/book", json={}, headers=read)
        assert reply.status_code == 403
        assert reply.json()["code"] == 7
        assert "needs the admin scope" in reply.json()["message"]

        admin = {"authorization": f"Bearer {ADMIN_KEY}"}
        reply = await client.put("/v1/shelves/s/book", json={}, headers=admin)
        assert reply.status_code == 200
        metadata = reply.json()["metadata"]
        assert metadata["mediasuite-principal"] == "ops"
        assert metadata["mediasuite-scope"] == "admin"
        assert "authorization" not in metadata, "credentials stay at the gateway"

        # a POST not in the read-only list needs admin; the pages need no key
        assert (await client.post("/v1/echo:body", json={}, headers=read)).status_code == 403
        for page in ("/", "/docs", "/openapi.json", "/healthz"):
            assert (await client.get(page)).status_code == 200


async def test_websocket_auth_by_subprotocol(upstream: str) -> None:
    async with running_gateway({"echo": upstream}, echo=True, GATEWAY_API_KEYS=KEYS) as gateway:
        url = gateway.url.replace("http://", "ws://") + "/v1/count/2"
        async with websockets.connect(url) as socket:
            frame = json.loads(await socket.recv())
            with pytest.raises(websockets.ConnectionClosed):
                await socket.recv()
        assert socket.close_code == 4401
        assert frame["error"]["code"] == 16
        protocols = [websockets.Subprotocol("mediasuite.v1"), websockets.Subprotocol(f"bearer.{READ_KEY}")]
        async with websockets.connect(url, subprotocols=protocols) as socket:
            frames = [json.loads(await socket.recv()) for _ in range(2)]
        assert frames == [{"result": {"index": 1}}, {"result": {"index": 2}}]


async def test_body_limit_is_413_naming_the_variable(upstream: str) -> None:
    async with (
        running_gateway({"echo": upstream}, echo=True, GATEWAY_MAX_BODY_BYTES="1KiB") as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as client,
    ):
        reply = await client.post("/v1/echo:body", json={"a": "x" * 2000})
        assert reply.status_code == 413
        body = reply.json()
        assert body["code"] == 8
        assert "GATEWAY_MAX_BODY_BYTES=1024" in body["message"]
        assert body["details"][0]["metadata"]["env"] == "GATEWAY_MAX_BODY_BYTES"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
            yield b'{"a": "'
            for _ in range(10):
                yield b"y" * 200
            yield b'"}'

        reply = await client.post("/v1/echo:body", content=chunks())
        assert reply.status_code == 413
        assert (await client.post("/v1/echo:body", json={"a": "x" * 900})).status_code == 200


async def test_deadline_forwarded_as_grpc_timeout(upstream: str) -> None:
    async with (
        running_gateway(
            {"echo": upstream, "cache": upstream}, echo=True, GATEWAY_MAX_DEADLINE="1m"
        ) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as client,
    ):
        reply = await client.get("/v1/echo", headers={"grpc-timeout": "2S"})
        assert reply.status_code == 200, reply.text
        remaining = float(reply.json()["metadata"]["test-deadline-remaining"])
        # the call's deadline is the caller's 2 s (the wire format rounds up a little), not the 10 s default
        assert 0 < remaining <= 2.1

        reply = await client.get("/v1/cache/namespaces/n/entries/5", headers={"grpc-timeout": "200m"})
        assert reply.status_code == 504, reply.text
        assert reply.json()["code"] == 4

        reply = await client.get("/v1/echo", headers={"grpc-timeout": "soon"})
        assert reply.status_code == 400
        assert reply.json()["details"][0]["fieldViolations"][0]["field"] == "Grpc-Timeout"

        reply = await client.get("/v1/echo", headers={"grpc-timeout": "2H"})
        assert reply.status_code == 400
        assert "GATEWAY_MAX_DEADLINE" in reply.json()["message"]


async def test_request_id_generated_or_passed_through_and_forwarded(upstream: str) -> None:
    async with (
        running_gateway({"echo": upstream}, echo=True) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as client,
    ):
        reply = await client.get("/v1/echo")
        generated = reply.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated)
        assert reply.json()["metadata"]["x-request-id"] == generated

        reply = await client.get("/v1/echo", headers={"x-request-id": "req-42"})
        assert reply.headers["x-request-id"] == "req-42"
        assert reply.json()["metadata"]["x-request-id"] == "req-42"

        reply = await client.get("/v1/echo", headers={"x-request-id": "bad id with spaces"})
        assert reply.headers["x-request-id"] != "bad id with spaces"
        assert (await client.get("/v1/nothing")).headers["x-request-id"]


async def test_selected_headers_forwarded_hop_by_hop_never(upstream: str) -> None:
    async with (
        running_gateway(
            {"echo": upstream},
            echo=True,
            GATEWAY_FORWARD_HEADERS="accept-language,x-tenant,x-secret,traceparent",
        ) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as client,
    ):
        reply = await client.get(
            "/v1/echo",
            headers={
                "accept-language": "fr",
                "x-tenant": "acme",
                "x-secret": "only-for-this-hop",
                "connection": "keep-alive, x-secret",
                "keep-alive": "timeout=5",
                "grpc-metadata-flavour": "vanilla",
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "x-not-selected": "1",
            },
        )
        metadata = reply.json()["metadata"]
        assert metadata["accept-language"] == "fr"
        assert metadata["x-tenant"] == "acme"
        assert metadata["flavour"] == "vanilla"
        assert metadata["traceparent"] == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        for absent in (
            "x-secret",
            "connection",
            "keep-alive",
            "x-not-selected",
            "host",
            "mediasuite-principal",
        ):
            assert absent not in metadata, absent
        latin = "café".encode()  # raw UTF-8 bytes in a header
        reply = await client.get("/v1/echo", headers={b"x-tenant": latin})
        assert reply.status_code == 200
        assert "x-tenant" not in reply.json()["metadata"], "a non-ASCII value is left out, not an error"
        reply = await client.get("/v1/echo", headers={b"grpc-metadata-flavour": latin})
        assert reply.status_code == 400, "an explicit metadata header that cannot be sent is refused"
        for reserved in (
            "grpc-metadata-connection",
            "grpc-metadata-mediasuite-scope",
            "grpc-metadata-grpc-timeout",
        ):
            reply = await client.get("/v1/echo", headers={reserved: "x"})
            assert reply.status_code == 400, reserved
            assert reply.json()["details"][0]["fieldViolations"][0]["field"] == reserved


async def test_incoming_traceparent_continues_the_trace_into_grpc(grpc_server: ServerFactory) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = Telemetry(tracer_provider=provider)
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    async with (
        grpc_server([echo_binding(EchoState())], telemetry=telemetry) as server,
        running_gateway({"echo": server.address}, echo=True, telemetry=telemetry) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as client,
    ):
        headers = {"traceparent": f"00-{trace_id}-b7ad6b7169203331-01", "x-request-id": "find-me"}
        reply = await client.get("/v1/echo", headers=headers)
    assert reply.status_code == 200
    spans = {(s.kind, s.name): s for s in exporter.get_finished_spans()}
    http_span = spans[(SpanKind.SERVER, "GET /v1/echo")]
    assert http_span.attributes is not None
    assert http_span.attributes["http.request.header.x-request-id"] == ("find-me",), "findable by request id"
    client_span = spans[(SpanKind.CLIENT, "/gatewaytest.v1.EchoService/Echo")]
    server_span = spans[(SpanKind.SERVER, "/gatewaytest.v1.EchoService/Echo")]
    assert {format(s.context.trace_id, "032x") for s in (http_span, client_span, server_span)} == {trace_id}
    assert http_span.parent is not None
    assert format(http_span.parent.span_id, "016x") == "b7ad6b7169203331"
    assert client_span.parent is not None
    assert client_span.parent.span_id == http_span.context.span_id
    assert server_span.parent is not None
    assert server_span.parent.span_id == client_span.context.span_id
    assert reply.json()["metadata"]["traceparent"].split("-")[1] == trace_id


async def test_cors_only_for_configured_origins(upstream: str) -> None:
    async with (
        running_gateway({"echo": upstream}, echo=True, GATEWAY_CORS_ORIGINS="https://app.example") as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as client,
    ):
        preflight = {
            "access-control-request-method": "GET",
            "access-control-request-headers": "authorization",
        }
        reply = await client.options("/v1/echo", headers={"origin": "https://app.example", **preflight})
        assert reply.status_code == 200
        assert reply.headers["access-control-allow-origin"] == "https://app.example"
        reply = await client.options("/v1/echo", headers={"origin": "https://evil.example", **preflight})
        assert reply.status_code == 400
        assert "access-control-allow-origin" not in reply.headers
        reply = await client.get("/v1/echo", headers={"origin": "https://app.example"})
        assert reply.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-request-id" in reply.headers["access-control-expose-headers"]
    async with (
        running_gateway({"echo": upstream}, echo=True) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as client,
    ):
        reply = await client.get("/v1/echo", headers={"origin": "https://app.example"})
        assert "access-control-allow-origin" not in reply.headers


async def test_pages_have_security_headers_and_static_files_cannot_escape(upstream: str) -> None:
    async with (
        running_gateway({"echo": upstream}, echo=True) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as client,
    ):
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["referrer-policy"] == "no-referrer"
        for path in (
            "/static/",
            "/static",
            "/static/..%2fapp.py",
            "/static/%2e%2e/app.py",
            "/static/../app.py",
            "/static/..%2F..%2Fpyproject.toml",
            "/static/.hidden",
            "/gateway/app.py",
        ):
            reply = await client.get(path)
            assert reply.status_code == 404, path
            assert "import" not in reply.text


async def test_a_gateway_bug_is_500_with_an_error_id_and_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A route whose upstream has no address: a configuration bug the gateway cannot recover from.
    table = build_routes([Upstream(echo_service(), "nowhere")])
    built = create_app(gateway_config(), table=table, upstreams=Upstreams({}))
    transport = httpx.ASGITransport(app=built.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        reply = await client.get("/v1/echo")
    assert reply.status_code == 500
    body = reply.json()
    assert body["code"] == 13
    error_id = re.search(r"error id ([0-9a-f]{12})", body["message"])
    assert error_id is not None
    assert "Traceback" not in reply.text
    assert "nowhere" not in reply.text
    assert any(error_id.group(1) in record.getMessage() and record.exc_info for record in caplog.records)
