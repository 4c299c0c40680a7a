"""Runtime settings the Kubernetes deployment relies on: mutual TLS, a plaintext health-only port
for the kubelet's gRPC probes, and a maximum connection age so clients re-resolve DNS."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.runtime.clients import open_channel
from services.runtime.config import Env
from services.runtime.server import ServiceBinding
from services.runtime.tls import TlsConfig
from tests.conftest import ServerFactory
from tests.support.certs import Leaf, expired_leaf, make_ca, make_leaf

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _peer_binding() -> ServiceBinding:
    """A one-method service answering with the caller's address as the server sees it."""

    async def who(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return context.peer().encode()

    handler = grpc.method_handlers_generic_handler(
        "test.Peer", {"Who": grpc.unary_unary_rpc_method_handler(who)}
    )
    return ServiceBinding("test.Peer", lambda server: server.add_generic_rpc_handlers((handler,)))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Leaf, Leaf, Leaf]:
    """Server and client certificates from one CA, and a client certificate from another CA."""
    directory = tmp_path_factory.mktemp("certs")
    ca = make_ca(directory / "suite")
    other = make_ca(directory / "other")
    return make_leaf(ca, "server"), make_leaf(ca, "client"), make_leaf(other, "stranger")


@pytest.fixture(scope="module")
def expired(certs: tuple[Leaf, Leaf, Leaf]) -> Leaf:
    """A client certificate signed by the server's own CA that expired yesterday."""
    return expired_leaf(certs[0].ca, "expired")


async def _check(channel: grpc.aio.Channel) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return int(reply.status)


def _tls(leaf: Leaf) -> TlsConfig:
    config = TlsConfig.from_env(Env(leaf.env()))
    assert config is not None
    return config


async def test_mtls_server_accepts_a_client_certificate_of_its_ca(
    grpc_server: ServerFactory, certs: tuple[Leaf, Leaf, Leaf]
) -> None:
    server_leaf, client_leaf, _ = certs
    async with grpc_server([], **server_leaf.env()) as server:
        channel = open_channel(server.address, tls=_tls(client_leaf))
        assert await _check(channel) == SERVING
        await channel.close(None)


@pytest.mark.parametrize("client", ["plaintext", "no certificate", "another CA", "expired certificate"])
async def test_mtls_server_refuses_clients_it_cannot_verify(
    grpc_server: ServerFactory, certs: tuple[Leaf, Leaf, Leaf], expired: Leaf, client: str
) -> None:
    server_leaf, _, stranger = certs
    async with grpc_server([], **server_leaf.env()) as server:
        if client == "plaintext":
            channel = grpc.aio.insecure_channel(server.address)
        elif client == "no certificate":
            creds = grpc.ssl_channel_credentials(root_certificates=server_leaf.ca.read_bytes())
            channel = grpc.aio.secure_channel(server.address, creds)
        elif client == "another CA":
            channel = open_channel(server.address, tls=_tls(stranger))
        else:
            channel = open_channel(server.address, tls=_tls(expired))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _check(channel)
        await channel.close(None)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_health_port_answers_plaintext_while_the_main_port_needs_mtls(
    grpc_server: ServerFactory, certs: tuple[Leaf, Leaf, Leaf]
) -> None:
    server_leaf, _, _ = certs
    async with grpc_server([], GRPC_HEALTH_LISTEN="127.0.0.1:0", **server_leaf.env()) as server:
        assert server.health_address is not None
        assert server.health_address != server.address
        async with grpc.aio.insecure_channel(server.health_address) as channel:
            assert await _check(channel) == SERVING
            reflection = channel.unary_unary(
                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", None, None
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await reflection(b"", timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED, "the health port serves health only"


async def test_health_port_reports_not_serving_during_the_drain(grpc_server: ServerFactory) -> None:
    async with grpc_server([], GRPC_HEALTH_LISTEN="127.0.0.1:0", SHUTDOWN_DRAIN="2s") as server:
        assert server.health_address is not None
        async with grpc.aio.insecure_channel(server.health_address) as channel:
            stopping = asyncio.create_task(server.stop(grace=1.0))
            status = SERVING
            for _ in range(100):
                status = await _check(channel)
                if status == NOT_SERVING:
                    break
                await asyncio.sleep(0.02)
            await stopping
    assert status == NOT_SERVING, "a readiness probe on the health port sees the drain at once"


async def test_connections_older_than_the_maximum_age_are_replaced(grpc_server: ServerFactory) -> None:
    async with grpc_server([_peer_binding()], GRPC_MAX_CONNECTION_AGE="300ms", SHUTDOWN_GRACE="1s") as server:
        channel = open_channel(server.address)
        who = channel.unary_unary("/test.Peer/Who", None, None)
        peers = set()
        for _ in range(30):
            peers.add(await who(b"", timeout=5))
            await asyncio.sleep(0.05)
        await channel.close(None)
    assert len(peers) >= 2, "the client reconnected (new port) after the server closed an old connection"


def test_tls_needs_all_three_files_or_none(tmp_path: Path) -> None:
    from services.runtime.config import ConfigError

    assert TlsConfig.from_env(Env({})) is None
    with pytest.raises(ConfigError, match="GRPC_TLS_CA is not set: expected a file path"):
        TlsConfig.from_env(Env({"GRPC_TLS_CERT": "a.crt", "GRPC_TLS_KEY": "a.key"}))


def test_a_missing_certificate_file_names_the_variable(tmp_path: Path) -> None:
    config = TlsConfig(tmp_path / "none.crt", tmp_path / "none.key", tmp_path / "ca.crt")
    with pytest.raises(OSError, match=r"cannot read GRPC_TLS_KEY=.*none\.key"):
        config.server_credentials()
