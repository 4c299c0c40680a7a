"""The environment each pod gets matches what its process reads (``mediasuite config``).

The checks are derived from the code, not from a list kept here: when a service starts reading a
new variable, these tests say whether the manifests must set it (its default points at loopback)
and whether what they set is valid (each process's own ``--check-config``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.sdk import environment_variables as otel_variables

from services.cli.suite import process_settings
from services.runtime.config import Env
from services.runtime.telemetry import TelemetryConfig
from tests.support.k8s import VARIANTS, Container, rendered, service_port

BIN = Path(sys.executable).parent
SETTINGS = process_settings()
# Variables the OpenTelemetry SDK reads itself (the README's configuration section names them).
OTEL_SDK_VARIABLES = {
    v for k, v in vars(otel_variables).items() if k.startswith("OTEL_") and isinstance(v, str)
}
LOOPBACK = re.compile(r"(^|[/@])(127\.0\.0\.1|localhost|\[::1\])(:|$)")
ADDRESS = re.compile(r"^(?:[a-z]+:(?://)?/?)?(?:[^@/]*@)?(?P<host>[A-Za-z0-9.\-]+):(?P<port>\d+)(?:/.*)?$")

CONTAINERS = [(v, c) for v in sorted(VARIANTS) for c in rendered(v).containers() if c.process is not None]
IDS = [f"{v}:{c.process}" for v, c in CONTAINERS]


def test_process_settings_cover_every_process() -> None:
    assert set(SETTINGS) == {c.process for _, c in CONTAINERS}


@pytest.mark.parametrize(("variant", "container"), CONTAINERS, ids=IDS)
def test_every_variable_set_is_one_the_process_reads(variant: str, container: Container) -> None:
    reads = {s.name for s in SETTINGS[str(container.process)]}
    unknown = sorted(
        name
        for name in container.env()
        if name not in reads and name not in OTEL_SDK_VARIABLES and name not in container.referenced_only()
    )
    assert unknown == [], (
        f"{container.process} does not read {unknown}: a typo, or wire them in its config.py"
    )


@pytest.mark.parametrize(("variant", "container"), CONTAINERS, ids=IDS)
def test_no_setting_falls_back_to_a_loopback_default(variant: str, container: Container) -> None:
    env = container.env()
    missing = sorted(
        s.name for s in SETTINGS[str(container.process)] if LOOPBACK.search(s.default) and not env.get(s.name)
    )
    assert missing == [], (
        f"{container.process} reads {missing} whose defaults are loopback addresses: set them in "
        f"deploy/k8s/base/{container.process}.yaml (a listen address to 0.0.0.0:<port>, "
        "a peer to its Service)"
    )


@pytest.mark.parametrize(("variant", "container"), CONTAINERS, ids=IDS)
def test_every_peer_address_reaches_a_declared_port(variant: str, container: Container) -> None:
    checked = 0
    for name, value in container.env().items():
        match = ADDRESS.match(value)
        if match is None or match["host"] == "0.0.0.0":  # noqa: S104 (reads a manifest's address; binds nothing)
            continue
        host, port = match["host"], int(match["port"])
        if "." in host and rendered(variant).get("Service", host.split(".")[0]) is None:
            continue  # outside the cluster namespace (an external Redis, say)
        reached = service_port(rendered(variant), host, port)
        assert reached is not None, f"{name}={value}: no Service {host} with port {port} in {variant}"
        checked += 1
        target, number = reached
        if name.endswith("_HEALTH_ADDR"):  # the monitor's checks: plaintext, also with mTLS on
            peer = name.removesuffix("_HEALTH_ADDR").lower()
            assert (target.process, target.ports()["health"]) == (peer, number), (
                f"{name} reaches {peer}'s health-only port"
            )
        elif name.endswith("_ADDR"):
            peer = name.removesuffix("_ADDR").lower()
            assert (target.process, target.ports()["grpc"]) == (peer, number), f"{name} reaches {peer}'s gRPC"
    if container.process == "gateway":
        assert checked >= 4
    if container.process == "monitor":
        assert checked >= 8, "four health addresses and four main addresses"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_monitor_checks_the_redis_the_cache_uses(variant: str) -> None:
    """Same REDIS_URL, from the same Secret the same way (bundled Redis, or external-redis's `url`)."""
    containers = rendered(variant).process_containers()
    cache, monitor = containers["cache"], containers["monitor"]
    assert monitor.env()["REDIS_URL"] == cache.env()["REDIS_URL"]

    def redis_entries(container: Container) -> list[dict[str, object]]:
        return [e for e in container.spec["env"] if str(e["name"]).startswith("REDIS_")]

    assert redis_entries(monitor) == redis_entries(cache)


@pytest.mark.parametrize(("variant", "container"), CONTAINERS, ids=IDS)
def test_traces_and_metrics_go_to_the_collector(variant: str, container: Container) -> None:
    env = container.env()
    telemetry = TelemetryConfig.from_env(Env(env), f"mediasuite-{container.process}", env)
    assert (telemetry.traces_exporter, telemetry.metrics_exporter, telemetry.disabled) == (
        "otlp",
        "otlp",
        False,
    )
    endpoint = ADDRESS.match(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert endpoint is not None
    assert endpoint["host"] == "otel-collector"
    reached = service_port(rendered(variant), endpoint["host"], int(endpoint["port"]))
    assert reached is not None
    assert reached[0].workload_name == "otel-collector"


@pytest.mark.parametrize(("variant", "container"), CONTAINERS, ids=IDS)
def test_each_process_accepts_its_configuration(variant: str, container: Container, tmp_path: Path) -> None:
    """The process's own start-up check (`mediasuite-<process> --check-config`) on the pod's env,
    with the files it mounts (the monitor reads its alert rules then)."""
    env = {"PATH": os.environ["PATH"], **container.env_with_mounts(tmp_path)}
    result = subprocess.run(
        [str(BIN / container.argv()[0]), *container.argv()[1:], "--check-config"],
        env=env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stdout


def test_mtls_is_on_in_prod_and_off_in_dev() -> None:
    for variant, on in (("overlays/dev", False), ("overlays/prod", True)):
        for container in rendered(variant).process_containers().values():
            env = container.env()
            assert bool(env.get("GRPC_TLS_CERT")) is on, f"{variant}: {container.process}"
            if on:
                mounts = {m["mountPath"] for m in container.spec["volumeMounts"]}
                for name in ("GRPC_TLS_CERT", "GRPC_TLS_KEY", "GRPC_TLS_CA"):
                    assert str(Path(env[name]).parent) in mounts, f"{name} is in a mounted Secret"
                assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("https://")
