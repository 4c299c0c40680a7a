"""Where and how the monitor checks each process's health, against real servers with mTLS on.

With GRPC_TLS_* set, a process's main port refuses plaintext; its health-only port
(GRPC_HEALTH_LISTEN) answers plaintext. The monitor must reach every process one way or the
other: its plaintext health port when ``<NAME>_HEALTH_ADDR`` names it (Kubernetes), else the main
port over mTLS with the monitor's own certificate.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from services.monitor.config import HealthTarget, MonitorConfig
from services.monitor.probes import GrpcHealthProbe
from services.monitor.server import build_monitor
from services.runtime.config import ConfigError, Env
from services.runtime.tls import TlsConfig
from tests.conftest import ServerFactory
from tests.support.certs import Leaf, make_ca, make_leaf
from tests.support.monitor import ScriptedReader


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Leaf, Leaf]:
    """A server and a monitor certificate from one CA."""
    ca = make_ca(tmp_path_factory.mktemp("certs") / "suite")
    return make_leaf(ca, "server"), make_leaf(ca, "monitor")


def _tls(leaf: Leaf) -> TlsConfig:
    config = TlsConfig.from_env(Env(leaf.env()))
    assert config is not None
    return config


def test_a_health_address_wins_and_is_plaintext_else_the_main_address_with_the_monitors_tls() -> None:
    tls_env = {"GRPC_TLS_CERT": "/tls/tls.crt", "GRPC_TLS_KEY": "/tls/tls.key", "GRPC_TLS_CA": "/tls/ca.crt"}
    config = MonitorConfig.from_env(
        Env(
            {
                **tls_env,
                "CACHE_ADDR": "cache:50051",
                "CACHE_HEALTH_ADDR": "cache:8086",
                "BATCH_ADDR": "batch:1",
            }
        )
    )
    assert config.components["cache"] == HealthTarget("cache:8086", None)
    assert config.components["batch"] == HealthTarget("batch:1", config.server.tls)
    assert config.server.tls is not None
    plain = MonitorConfig.from_env(Env({"MONITOR_CHECK": "gateway"}))
    assert plain.components == {"gateway": HealthTarget("127.0.0.1:50055", None)}


def test_the_monitor_reads_health_addresses_of_the_checked_processes_and_not_its_own_address() -> None:
    env = Env({})
    MonitorConfig.from_env(env)
    read = {s.name for s in env.settings}
    assert {"CACHE_HEALTH_ADDR", "PROCESSING_HEALTH_ADDR", "BATCH_HEALTH_ADDR", "GATEWAY_HEALTH_ADDR"} <= read
    assert "MONITOR_HEALTH_ADDR" not in read
    assert "MONITOR_ADDR" not in read, "the monitor never calls itself"


def test_a_bad_health_address_stops_the_monitor_naming_it() -> None:
    with pytest.raises(ConfigError, match="PROCESSING_HEALTH_ADDR is 'processing': expected host:port"):
        MonitorConfig.from_env(Env({"PROCESSING_HEALTH_ADDR": "processing"}))


async def test_a_plaintext_check_of_an_mtls_main_port_fails_where_mtls_and_the_health_port_work(
    grpc_server: ServerFactory, certs: tuple[Leaf, Leaf]
) -> None:
    server_leaf, monitor_leaf = certs
    async with grpc_server([], GRPC_HEALTH_LISTEN="127.0.0.1:0", **server_leaf.env()) as server:
        assert server.health_address is not None
        plaintext_main = GrpcHealthProbe("cache", server.address)
        mtls_main = GrpcHealthProbe("cache", server.address, _tls(monitor_leaf))
        health_port = GrpcHealthProbe("cache", server.health_address)
        try:
            serving, detail = await plaintext_main.check(2.0)
            assert not serving
            assert detail.startswith("UNAVAILABLE"), detail
            assert await mtls_main.check(2.0) == (True, "SERVING")
            assert await health_port.check(2.0) == (True, "SERVING")
            await server.set_serving(False)
            assert await mtls_main.check(2.0) == (False, "NOT_SERVING")
            assert await health_port.check(2.0) == (False, "NOT_SERVING"), "one status, both ports"
        finally:
            for probe in (plaintext_main, mtls_main, health_port):
                await probe.close()


async def test_the_monitor_built_from_its_environment_sees_every_process_with_mtls_on(
    grpc_server: ServerFactory, certs: tuple[Leaf, Leaf], tmp_path: Path
) -> None:
    """Kubernetes' way (health port) for one process, the main port over mTLS for the other."""
    server_leaf, monitor_leaf = certs
    async with (
        grpc_server([], GRPC_HEALTH_LISTEN="127.0.0.1:0", **server_leaf.env()) as cache,
        grpc_server([], **server_leaf.env()) as batch,
    ):
        assert cache.health_address is not None
        env = {
            **monitor_leaf.env(),
            "MONITOR_CHECK": "cache,batch",
            "CACHE_ADDR": cache.address,
            "CACHE_HEALTH_ADDR": cache.health_address,
            "BATCH_ADDR": batch.address,
            "MONITOR_HEALTH_TIMEOUT": "2s",
        }
        monitor = build_monitor(MonitorConfig.from_env(Env(env)), reader=ScriptedReader())
        try:
            states = await monitor.health.check(time.time())
        finally:
            await monitor.health.close()
    assert [(s.name, s.target, s.serving, s.detail) for s in states] == [
        ("cache", cache.health_address, True, "SERVING"),
        ("batch", batch.address, True, "SERVING"),
    ]


def test_a_missing_certificate_stops_the_monitor_at_build_naming_the_variable(tmp_path: Path) -> None:
    env = {
        "GRPC_TLS_CERT": str(tmp_path / "none.crt"),
        "GRPC_TLS_KEY": str(tmp_path / "none.key"),
        "GRPC_TLS_CA": str(tmp_path / "ca.crt"),
        "MONITOR_CHECK": "cache",
    }
    with pytest.raises(OSError, match=r"cannot read GRPC_TLS_CA=.*ca\.crt"):
        build_monitor(MonitorConfig.from_env(Env(env)), reader=ScriptedReader())
