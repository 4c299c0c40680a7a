"""Manifest smoke test: the rendered overlays, started on this machine the way the kubelet would.

For every container of an overlay (dev, and prod with mTLS on) the test takes the command, args
and environment from the rendered manifests (ConfigMaps, Secrets and $(VAR) references resolved),
maps every container port to a free loopback port and every Service name to 127.0.0.1 (so
``cache:50051`` becomes the cache's mapped port), gives every volume mount a directory (ConfigMap
and Secret files written into it; every claim of a PersistentVolumeClaim one directory shared by
the pods that mount it, as a ReadWriteMany volume is), starts the processes together, and runs each
declared probe on the kubelet's schedule (initialDelaySeconds, periodSeconds, timeoutSeconds,
failureThreshold). Then it stops them like a pod deletion does (SIGTERM, SIGKILL after
terminationGracePeriodSeconds). For prod, the Secrets an operator creates are made here: a fresh CA
and a certificate for mTLS, and a fresh API key for the gateway (dev ships its own, documented key).

The suite is checked as one: a thumbnail of a photo in the media library, asked of the gateway's
HTTP port with an API key, is made by processing from the mounted library, stored in the derived
volume and the cache (over mTLS in prod), and asked again is served from the cache, as the cache's
statistics show.

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

import base64
import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from gateway.auth import hash_key, new_key
from mediasuite.monitor.v1 import monitor_service_pb2, monitor_service_pb2_grpc
from tests.support.certs import Leaf, make_ca, make_leaf
from tests.support.k8s import K8S, Container, Rendered, rendered, service_port
from tests.support.media import photo, save
from tests.support.otlp import otlp_receiver
from tests.support.processes import free_port

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
VARIANT = "overlays/dev"
OVERLAYS = ("overlays/dev", "overlays/prod")
# The dev overlay's gateway key (overlays/dev/kustomization.yaml documents it; its digest is the Secret's).
DEV_API_KEY = "msk_dev-only-not-secret-never-expose-a-dev-gateway"
PHOTO = "smoke/photo.jpg"  # in the media library
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
        if "persistentVolumeClaim" in volume:
            # One volume, every pod that mounts the claim (ReadWriteMany): media and derived are shared.
            local = root / "volumes" / volume["persistentVolumeClaim"]["claimName"]
            local.mkdir(parents=True, exist_ok=True)
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


def _http_probe(pod: LocalPod, action: dict[str, Any], timeout: float) -> str:
    """An httpGet probe: "ok" for a status the kubelet counts as success (200-399)."""
    port = action["port"]
    number = pod.container.ports()[port] if isinstance(port, str) else int(port)
    url = f"http://127.0.0.1:{pod.ports[number]}{action.get('path', '/')}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            status = int(reply.status)
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError as error:
        return str(error)
    return "ok" if 200 <= status < 400 else f"HTTP {status}"


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
    if "httpGet" in probe:
        return _http_probe(pod, probe["httpGet"], timeout)
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


def _operator_secrets(root: Path, api_key: str) -> tuple[dict[str, dict[str, str]], Leaf]:
    """What an operator puts in the Secrets before deploying prod: a fresh CA and certificate, and the
    gateway's keys file with the entry `mediactl gateway new-key` prints for ``api_key``."""
    suite = make_leaf(make_ca(root / "pki"), "suite")
    mtls = {
        "tls.crt": suite.cert.read_text(),
        "tls.key": suite.key.read_text(),
        "ca.crt": suite.ca.read_text(),
    }
    keys = {"keys": f"smoke:admin:{hash_key(api_key)}\n"}
    return {"mediasuite-mtls": mtls, "mediasuite-api-keys": keys}, suite


def _api_key(objects: Rendered) -> str:
    """The key to call the gateway with: dev's documented key (checked against its Secret), or a new one."""
    if objects.variant != "overlays/dev":
        return new_key()
    secret = next(
        s for s in objects.of_kind("Secret") if s["metadata"]["name"].startswith("mediasuite-api-keys")
    )
    entries = base64.b64decode(secret["data"]["keys"]).decode()
    assert f":{hash_key(DEV_API_KEY)}" in entries, "the dev Secret holds the documented key's digest"
    assert DEV_API_KEY in (K8S / "overlays" / "dev" / "kustomization.yaml").read_text()
    return DEV_API_KEY


def _call(pod: LocalPod, method: str, path: str, key: str | None, body: object = None) -> tuple[int, Any]:
    """An HTTP call to the gateway's `http` port; (status, parsed JSON body)."""
    port = pod.ports[pod.container.ports()["http"]]
    reply = httpx.request(
        method,
        f"http://127.0.0.1:{port}{path}",
        content=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json", **({"authorization": f"Bearer {key}"} if key else {})},
        timeout=60,
    )
    return reply.status_code, json.loads(reply.content or b"null")


def _thumbnail_through_the_suite(gateway: LocalPod, key: str, derived: Path) -> None:
    """gateway -> processing (media from the library volume) -> derived volume and cache; again -> cache."""
    status, _ = _call(gateway, "GET", "/v1/cache/stats", None)
    assert status == 401, "the gateway requires an API key"

    def thumbnail(output_mode: str) -> dict[str, Any]:
        encode = {"format": "IMAGE_FORMAT_WEBP", "outputMode": output_mode}
        return {"media": {"path": PHOTO}, "preset": "small", "encode": encode}

    stored = thumbnail("OUTPUT_MODE_STORE")
    status, first = _call(gateway, "POST", "/v1/processing:thumbnail", key, stored)
    assert status == 200, first
    assert first["operation"]["cached"] is False
    output = first["output"]
    assert (output["width"], output["height"]) == (160, 120)
    written = derived / output["storedPath"]
    assert written.read_bytes()[8:12] == b"WEBP", "stored in the derived volume"
    inline = thumbnail("OUTPUT_MODE_INLINE")
    status, second = _call(gateway, "POST", "/v1/processing:thumbnail", key, inline)
    assert status == 200, second
    assert second["operation"]["cached"] is True, "the second call is served from the cache"
    image = Image.open(io.BytesIO(base64.b64decode(second["output"]["inline"])))
    assert (image.format, image.size) == ("WEBP", (160, 120))
    status, stats = _call(gateway, "GET", "/v1/cache/stats", key)
    assert status == 200, stats
    thumbnails = next(n for n in stats["namespaces"] if n["namespace"] == "thumbnail")
    assert int(thumbnails["sets"]) >= 1, thumbnails
    assert int(thumbnails["hits"]) >= 1, thumbnails


def _gateway_reaches_batch_and_monitor(gateway: LocalPod, key: str) -> None:
    """One call to each of the other upstreams; a refused or unreachable upstream would be 503."""
    status, reply = _call(gateway, "GET", "/v1/monitor/alerts/rules", key)
    assert status == 200, reply
    status, reply = _call(gateway, "GET", "/v1/batches", key)
    assert status == 200, reply


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
    api_key = _api_key(objects)
    secrets, suite = _operator_secrets(tmp_path, api_key)
    pods = _prepare(objects, tmp_path, secrets)
    library = tmp_path / "volumes" / "media-library"
    (library / PHOTO).parent.mkdir(parents=True)
    (library / PHOTO).write_bytes(save(photo(800, 600), "JPEG", quality=90))
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
        # NetworkPolicies open to it): calls through it reach every other process (over mTLS in
        # prod) and make the spans and metrics checked at the end (health checks make none).
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
        _thumbnail_through_the_suite(gateway, api_key, tmp_path / "volumes" / "media-derived")
        _gateway_reaches_batch_and_monitor(gateway, api_key)
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


def test_the_smoke_test_would_notice_an_http_probe_on_a_missing_page(tmp_path: Path) -> None:
    """Not vacuous: the gateway's httpGet liveness probe on a path it does not serve (404) fails."""
    objects = rendered(VARIANT)
    pods = _prepare(objects, tmp_path)
    gateway = pods["gateway"]
    spec = dict(gateway.container.spec)
    spec["livenessProbe"] = {**spec["livenessProbe"], "httpGet": {"path": "/no-such-page", "port": "http"},
                             "periodSeconds": 1, "failureThreshold": 2}  # fmt: skip
    gateway.container = Container(objects, gateway.container.workload, spec)
    with _running({"gateway": gateway}, tmp_path):
        assert "livenessProbe failed (last: HTTP 404)" in _becomes_ready(gateway)
