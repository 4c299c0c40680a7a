"""With GRPC_TLS_* set (the prod overlay's mTLS), the gateway calls its upstreams over mutual TLS.

The application is built as the process builds it (``create_app`` from the configuration, with its
own upstream clients), so what is checked is what ``mediasuite-gateway`` does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.app import create_app
from gateway.server import HttpServer
from mediasuite.cache.v1 import cache_service_pb2_grpc
from tests.conftest import ServerFactory
from tests.support.certs import Leaf, make_ca, make_leaf
from tests.support.gateway import EchoCache, binding, gateway_config, make


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Leaf, Leaf]:
    """A server and a client certificate of one CA."""
    ca = make_ca(tmp_path_factory.mktemp("certs") / "suite")
    return make_leaf(ca, "server"), make_leaf(ca, "gateway")


@pytest.fixture
async def mtls_cache(grpc_server: ServerFactory, certs: tuple[Leaf, Leaf]) -> AsyncIterator[str]:
    """A cache upstream that requires a client certificate of the suite's CA."""
    cache = binding(
        "mediasuite.cache.v1.CacheService",
        cache_service_pb2_grpc.add_CacheServiceServicer_to_server,
        make(EchoCache),
    )
    async with grpc_server([cache], **certs[0].env()) as server:
        yield server.address


async def _get(cache_address: str, **env: str) -> httpx.Response:
    config = gateway_config({"cache": cache_address}, **env)
    built = create_app(config)
    http = HttpServer(built.asgi, config.http_listen, grace_seconds=1)
    await http.start()
    try:
        async with httpx.AsyncClient(base_url=http.url, timeout=10) as client:
            return await client.get("/v1/cache/namespaces/thumbnail/entries/a.jpg")
    finally:
        await http.stop()
        await built.upstreams.close()


async def test_the_gateway_presents_its_certificate_to_upstreams(
    mtls_cache: str, certs: tuple[Leaf, Leaf]
) -> None:
    reply = await _get(mtls_cache, **certs[1].env())
    assert reply.status_code == 200, reply.text
    assert reply.json()["found"] is True


async def test_without_tls_settings_an_mtls_upstream_is_unavailable(mtls_cache: str) -> None:
    """Not vacuous: the upstream refuses plaintext, so the 200 above came over mTLS."""
    reply = await _get(mtls_cache, GRPC_CLIENT_DEADLINE="2s")
    assert reply.status_code == 503
