"""Manifest smoke test: the rendered overlays, started on this machine the way the kubelet would.

For every container of an overlay (dev, and prod with mTLS on) the test takes the command, args
and environment from the rendered manifests (ConfigMaps, Secrets and $(VAR) references resolved),
maps every container port to a free loopback port and every Service name to 127.0.0.1 (so
``cache:50051`` becomes the cache's mapped port), gives every volume mount a directory (ConfigMap
and Secret files written into it), starts the processes together, and runs each declared probe on
the kubelet's schedule (initialDelaySeconds, periodSeconds, timeoutSeconds, failureThreshold).
Then it stops them like a pod deletion does (SIGTERM, SIGKILL after terminationGracePeriodSeconds).
For prod, the Secrets an operator creates are made here: a fresh CA and a certificate for mTLS.

The monitor is checked as the deployment wires it: its health checks reach every process and
Redis (through the health-only ports, also with mTLS on), its alert rules come from the mounted
ConfigMap, and its Prometheus port serves its own RPC metrics (which it keeps in-process instead of
exporting them to the collector, which would only forward them back to it).

Two stand-ins, because their binaries do not run here: the OpenTelemetry Collector is replaced by
a real OTLP/gRPC receiver on the collector Service's mapped port (so the test also proves every
process exports to the address the manifests give it), and Redis's probes get the mapped port
(`--port`/`-p`) that a pod would not need. With mTLS on, the stand-in collector requires a client
certificate of the suite's CA, as the real one does (components/mtls/tls.yaml).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mediasuite.monitor.v1 import monitor_service_pb2, monitor_service_pb2_grpc
from tests.support.certs import Leaf, make_ca, make_leaf
from tests.support.k8s import Container, Rendered, rendered, service_port
from tests.support.otlp import otlp_receiver
from tests.support.processes import free_port

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
VARIANT = "overlays/dev"
OVERLAYS = ("overlays/dev", "overlays/prod")
HOSTPORT = re.compile(r"(?P<host>\b[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9-]+)*):(?P<port>\d+)\b")


@dataclass
class LocalPod:
    """One container of the overlay, run as a local process."""

    container: Container
    ports: dict[int, int]  # containerPort -> loopback port
    mounts: dict[str, Path] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def output(self) -> str:
        """What the process wrote so far."""
        return self.log.read_text(errors="replace") if self.log else ""


def _local_value(value: str, pod: LocalPod, objects: Rendered, pods: dict[str, LocalPod]) -> str:
    """A manifest value as it must read on this machine: addresses and mount paths mapped."""

    def address(match: re.Match[str]) -> str:
        host, port = match["host"], int(match["port"])
        if host == "0.0.0.0":  # noqa: S104 (reads a manifest's address; binds nothing)
            return f"127.0.0.1:{pod.ports[port]}"
        reached = service_port(objects, host, port)
        if reached is None:
            return match.group(0)
        target, number = reached
        return f"127.0.0.1:{pods[target.workload_name].ports[number]}"

    value = HOSTPORT.sub(address, value)
    for mount_path, local in sorted(pod.mounts.items(), key=lambda item: -len(item[0])):
        if value == mount_path or value.startswith(mount_path + "/"):
            return str(local) + value[len(mount_path) :]
    return value


def _materialize(pod: LocalPod, objects: Rendered, root: Path, secrets: dict[str, dict[str, str]]) -> None:
    """A directory per volume mount; ConfigMap and Secret volumes get their files."""
    for mount in pod.container.spec.get("volumeMounts", []):
        local = root / pod.container.workload_name / mount["name"]
        local.mkdir(parents=True, exist_ok=True)
        templates = {
            t["metadata"]["name"] for t in pod.container.workload["spec"].get("volumeClaimTemplates", [])
        }
        volume = {} if mount["name"] in templates else pod.container.volume(mount["name"])
        data: dict[str, str] = {}
        if "configMap" in volume:
            data = objects.config_data("ConfigMap", volume["configMap"]["name"])
        elif "secret" in volume and objects.get("Secret", volume["secret"]["secretName"]) is not None:
            data = objects.config_data("Secret", volume["secret"]["secretName"])
        elif "secret" in volume:
            data = secrets.get(volume["secret"]["secretName"], {})
        for name, text in data.items():
            (local / name).write_text(text)
        pod.mounts[mount["mountPath"]] = local


def _prepare(
    objects: Rendered, root: Path, secrets: dict[str, dict[str, str]] | None = None
) -> dict[str, LocalPod]:
    pods = {
        c.workload_name: LocalPod(c, {number: free_port() for number in c.ports().values()})
        for c in objects.containers()
    }
    for pod in pods.values():
        _materialize(pod, objects, root, secrets or {})
    for pod in pods.values():
        manifest_env = pod.container.env()
        pod.env = {name: _local_value(value, pod, objects, pods) for name, value in manifest_env.items()}
        pod.argv = [_local_value(arg, pod, objects, pods) for arg in pod.container.argv()]
    return pods


def _start(pod: LocalPod, root: Path) -> None:
    argv = list(pod.argv)
    if pod.container.process is not None:
        argv[0] = str(BIN / argv[0])  # the console script the image has on its PATH
    elif argv[0] == "redis-server":
        # Stand-in adjustment: a pod owns its network namespace; here the port must be a free one.
        argv += ["--port", str(pod.ports[6379]), "--bind", "127.0.0.1", "--save", ""]
    else:
        return
    pod.log = root / f"{pod.container.workload_name}.log"
    with pod.log.open("wb") as out:
        pod.popen = subprocess.Popen(  # the pod's environment only, as in a container
            argv, env={"PATH": os.environ["PATH"], **pod.env}, stdout=out, stderr=subprocess.STDOUT
        )


def _probe_once(pod: LocalPod, probe: dict[str, Any]) -> str:
    """Run one probe as the kubelet would; returns "SERVING"/"ok" on success, else what went wrong."""
    timeout = float(probe.get("timeoutSeconds", 1))
    if "grpc" in probe:
        address = f"127.0.0.1:{pod.ports[int(probe['grpc']['port'])]}"
        with grpc.insecure_channel(address) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=probe["grpc"].get("service", "")), timeout=timeout
                )
            except grpc.RpcError as error:
                return str(error.code().name)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    if "tcpSocket" in probe:
        port = probe["tcpSocket"]["port"]
        number = pod.container.ports()[port] if isinstance(port, str) else int(port)
        try:
            socket.create_connection(("127.0.0.1", pod.ports[number]), timeout=timeout).close()
        except OSError as error:
            return str(error)
        return "ok"
    if "exec" in probe:
        command = list(probe["exec"]["command"])
        if command[0] == "redis-cli":
            command[1:1] = ["-p", str(pod.ports[6379])]  # stand-in adjustment (see the module docstring)
        result = subprocess.run(
            command, env={"PATH": os.environ["PATH"], **pod.env}, capture_output=True, text=True,
            timeout=timeout + 5, check=False,
        )  # fmt: skip
        return "ok" if result.returncode == 0 and "PONG" in result.stdout else result.stdout + result.stderr
    raise AssertionError(f"probe kind not emulated: {probe}")


def _kubelet(pod: LocalPod, kind: str) -> tuple[bool, str]:
    """The kubelet's schedule for one probe: until a success or failureThreshold failures."""
    probe = pod.container.spec[kind]
    time.sleep(float(probe.get("initialDelaySeconds", 0)))
    last = "never ran"
    for attempt in range(int(probe.get("failureThreshold", 3))):
        if pod.popen is not None and pod.popen.poll() is not None:
            return False, f"exited with {pod.popen.returncode}"
        if attempt:
            time.sleep(float(probe.get("periodSeconds", 10)))
        last = _probe_once(pod, probe)
        if last in ("SERVING", "ok"):
            return True, last
    return False, last


def _sees_not_serving(pod: LocalPod) -> bool:
    """Whether the readiness probe reports NOT_SERVING while the process drains (SHUTDOWN_DRAIN)."""
    probe = pod.container.spec["readinessProbe"]
    deadline = time.monotonic() + pod.container.pod["terminationGracePeriodSeconds"]
    while time.monotonic() < deadline and pod.popen is not None and pod.popen.poll() is None:
        if _probe_once(pod, probe) == "NOT_SERVING":
            return True
        time.sleep(0.05)  # the signal may not have been handled yet
    return False


def _becomes_ready(pod: LocalPod) -> str:
    """Startup probe, then readiness and liveness, each within its own timing; "" when all pass."""
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        if kind not in pod.container.spec:
            continue
        passed, last = _kubelet(pod, kind)
        if not passed:
            return f"{pod.container.workload_name}: {kind} failed (last: {last})\n{pod.output()[-3000:]}"
    return ""


@contextlib.contextmanager
def _running(pods: dict[str, LocalPod], root: Path) -> Iterator[None]:
    try:
        for pod in pods.values():
            _start(pod, root)
        yield
    finally:
        for pod in pods.values():
            if pod.popen is not None and pod.popen.poll() is None:
                pod.popen.kill()
                pod.popen.wait()


def _operator_secrets(root: Path) -> tuple[dict[str, dict[str, str]], Leaf]:
    """What an operator puts in the Secrets before deploying prod: here, a fresh CA and certificate."""
    suite = make_leaf(make_ca(root / "pki"), "suite")
    mtls = {
        "tls.crt": suite.cert.read_text(),
        "tls.key": suite.key.read_text(),
        "ca.crt": suite.ca.read_text(),
    }
    return {"mediasuite-mtls": mtls}, suite


def _collector_credentials(suite: Leaf) -> grpc.ServerCredentials:
    """The collector's side of mTLS (components/mtls/tls.yaml): require a client certificate of the CA."""
    return grpc.ssl_server_credentials(
        [(suite.key.read_bytes(), suite.cert.read_bytes())],
        root_certificates=suite.ca.read_bytes(),
        require_client_auth=True,
    )


def _main_port_needs_mtls(pod: LocalPod, suite: Leaf) -> None:
    """With mTLS on, the main port refuses plaintext and answers a client with a suite certificate."""
    address = f"127.0.0.1:{pod.ports[pod.container.ports()['grpc']]}"
    request = health_pb2.HealthCheckRequest()
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as refused:
        health_pb2_grpc.HealthStub(channel).Check(request, timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    credentials = grpc.ssl_channel_credentials(
        suite.ca.read_bytes(), suite.key.read_bytes(), suite.cert.read_bytes()
    )
    with grpc.secure_channel(address, credentials) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(request, timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def _monitor_channel(pod: LocalPod, suite: Leaf | None) -> grpc.Channel:
    """A channel to the monitor's main port, with the suite's certificate when mTLS is on."""
    address = f"127.0.0.1:{pod.ports[pod.container.ports()['grpc']]}"
    if suite is None:
        return grpc.insecure_channel(address)
    credentials = grpc.ssl_channel_credentials(
        suite.ca.read_bytes(), suite.key.read_bytes(), suite.cert.read_bytes()
    )
    return grpc.secure_channel(address, credentials)


def _monitor_sees_the_suite(pod: LocalPod, suite: Leaf | None) -> None:
    """Every process and Redis serving in the monitor's health (within a few checks), rules from the file."""
    stub = monitor_service_pb2_grpc.MonitorServiceStub(channel := _monitor_channel(pod, suite))
    with channel:
        rules = stub.ListAlertRules(monitor_service_pb2.ListAlertRulesRequest(), timeout=10)
        assert rules.source == pod.env["MONITOR_RULES_FILE"], "the rules come from the mounted ConfigMap"
        assert rules.source.startswith(str(pod.mounts["/etc/mediasuite/monitor"]))
        assert {r.name for r in rules.rules} >= {"cpu_usage", "error_rate"}
        wanted = {"cache", "processing", "batch", "gateway", "redis"}
        states: dict[str, tuple[bool, str, str]] = {}
        deadline = time.monotonic() + 30  # a check runs at every sampling (MONITOR_SAMPLE_INTERVAL, 5 s)
        while time.monotonic() < deadline:
            health = stub.GetHealth(monitor_service_pb2.GetHealthRequest(), timeout=10)
            states = {c.name: (c.serving, c.target, c.detail) for c in health.components}
            if set(states) == wanted and all(serving for serving, _, _ in states.values()):
                break
            time.sleep(0.5)
    assert set(states) == wanted, states
    assert all(serving for serving, _, _ in states.values()), f"the monitor's health checks fail: {states}"
    for name in wanted - {"redis"}:
        # The check went to the health-only port the manifests name (mapped here), not the main port.
        assert states[name][1] == pod.env[f"{name.upper()}_HEALTH_ADDR"], states[name]


def _scrape(pod: LocalPod) -> str:
    """The monitor's Prometheus page, at the port its pod declares as `metrics`."""
    port = pod.ports[pod.container.ports()["metrics"]]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.status == 200
        return bytes(reply.read()).decode()


def _monitor_serves_its_own_rpc_metrics(pod: LocalPod) -> None:
    """Its own RPC latency and its component states appear on /metrics (within a few samplings)."""
    deadline = time.monotonic() + 30
    page = ""
    while time.monotonic() < deadline:
        page = _scrape(pod)
        if re.search(r'^rpc_server_latency_p95\{[^}]*service="monitor"', page, re.MULTILINE):
            break
        time.sleep(0.5)
    assert re.search(r'^rpc_server_latency_p95\{[^}]*service="monitor"', page, re.MULTILINE), page[-3000:]
    assert re.search(r'^monitor_component_up\{component="cache"\} 1\.0$', page, re.MULTILINE), page[-3000:]


@pytest.mark.parametrize("variant", OVERLAYS)
def test_overlay_starts_every_process_and_passes_its_probes(variant: str, tmp_path: Path) -> None:
    objects = rendered(variant)
    secrets, suite = _operator_secrets(tmp_path)
    pods = _prepare(objects, tmp_path, secrets)
    processes = {name: pod for name, pod in pods.items() if pod.container.process is not None}
    assert len(processes) == 5
    mtls = bool(processes["cache"].env.get("GRPC_TLS_CERT"))
    assert mtls is (variant == "overlays/prod")
    collector = pods["otel-collector"]
    collector_address = f"127.0.0.1:{collector.ports[collector.container.ports()['otlp-grpc']]}"
    credentials = _collector_credentials(suite) if mtls else None

    with otlp_receiver(collector_address, credentials) as received, _running(pods, tmp_path):
        probed = [pod for pod in pods.values() if pod.popen is not None]
        with ThreadPoolExecutor(len(probed)) as pool:
            failures = [f for f in pool.map(_becomes_ready, probed) if f]
        assert failures == [], "\n\n".join(failures)

        # Outside traffic enters through the gateway's HTTP port (the only one the Service and the
        # NetworkPolicies open to it); one call on each main gRPC port makes spans and metrics.
        gateway = processes["gateway"]
        http = gateway.ports[gateway.container.ports()["http"]]
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz", timeout=10) as reply:
            assert reply.status == 200
        for pod in processes.values():
            if mtls:
                _main_port_needs_mtls(pod, suite)
            else:
                grpc_port = pod.container.ports()["grpc"]
                assert _probe_once(pod, {"grpc": {"port": grpc_port}, "timeoutSeconds": 5}) == "SERVING"
        _monitor_sees_the_suite(processes["monitor"], suite if mtls else None)
        _monitor_serves_its_own_rpc_metrics(processes["monitor"])

        # A pod deletion: SIGTERM to all; readiness goes NOT_SERVING during the drain; each exits 0
        # before the kubelet's SIGKILL (terminationGracePeriodSeconds).
        stopped_at = time.monotonic()
        for pod in processes.values():
            assert pod.popen is not None
            pod.popen.send_signal(signal.SIGTERM)
        for pod in processes.values():
            assert _sees_not_serving(pod), f"readiness never saw NOT_SERVING:\n{pod.output()[-2000:]}"
        for pod in processes.values():
            assert pod.popen is not None
            budget = pod.container.pod["terminationGracePeriodSeconds"] - (time.monotonic() - stopped_at)
            try:
                code = pod.popen.wait(timeout=max(budget, 0.1))
            except subprocess.TimeoutExpired:
                pytest.fail(
                    f"{pod.container.workload_name} outlived terminationGracePeriodSeconds:\n{pod.output()}"
                )
            assert code == 0, pod.output()[-3000:]

    for name, pod in processes.items():
        service_name = f"mediasuite-{pod.container.process}"
        assert received.spans[service_name] >= 1, f"{name} sent no spans to the collector address"
        if name == "monitor":
            # Kept in-process (services/monitor/self_metrics.py, checked on /metrics above): the
            # collector forwards metrics to the monitor, so an export would come back as a copy.
            assert service_name not in received.metrics, "the monitor exported its metrics to the collector"
            continue
        assert "rpc.server.duration" in received.metrics.get(service_name, set()), (
            f"{name} sent no RPC metrics"
        )
        # In the form mediasuite-env asks for (replicas share a service.name: deltas, not totals).
        assert received.forms[service_name, "rpc.server.duration"] == ("exponential_histogram", "DELTA")


def test_the_smoke_test_would_notice_a_wrong_probe_port(tmp_path: Path) -> None:
    """Not vacuous: a probe on a port the process does not serve fails within the probe's timing."""
    objects = rendered(VARIANT)
    pods = _prepare(objects, tmp_path)
    cache = pods["cache"]
    spec = dict(cache.container.spec)
    spec["startupProbe"] = {"grpc": {"port": cache.container.ports()["grpc"] + 1}, "periodSeconds": 1,
                            "failureThreshold": 2, "timeoutSeconds": 1}  # fmt: skip
    cache.container = Container(objects, cache.container.workload, spec)
    cache.ports[spec["startupProbe"]["grpc"]["port"]] = free_port()
    with _running({"cache": cache}, tmp_path):
        assert "startupProbe failed" in _becomes_ready(cache)
