"""Policy checks of the rendered manifests: checkov's Kubernetes policies (with every exception
written down), then our own for what checkov does not know about this suite."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from services.runtime.config import Env, ServerConfig
from tests.support.k8s import (
    OPERATOR_SECRETS,
    ROOT,
    VARIANTS,
    Container,
    pod_labels,
    render_text,
    rendered,
    selects,
)

CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"

# checkov policies we do not follow, and why (deploy/k8s/README.md, "Policy exceptions").
CHECKOV_EXCEPTIONS = {
    "CKV_K8S_15": "imagePullPolicy IfNotPresent, not Always: images are referenced by an immutable version "
    "tag (and by digest in production, see README), so a pull on every start adds a registry round-trip "
    "and a registry outage to every restart; dev clusters use images loaded locally (kind load).",
    "CKV_K8S_35": "Secrets as environment variables: the services read all configuration from the "
    "environment (DESIGN), so the Redis password reaches the cache inside REDIS_URL; redis-server gets "
    "it through $(REDIS_PASSWORD) in its arguments (no shell, no config file to template).",
    "CKV_K8S_43": "Images by tag, not digest, in the repository: the digest exists only once `make image` "
    "has built and pushed it; production pins it with `kustomize edit set image mediasuite=...@sha256:...` "
    "(README, 'Deploy to production').",
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_checkov_kubernetes_policies_pass(variant: str, tmp_path: Path) -> None:
    if not CHECKOV.exists():
        pytest.fail("checkov is not installed: run `make test` (or `make .tools/checkov/bin/checkov`)")
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(render_text(variant))
    result = subprocess.run(
        [str(CHECKOV), "--file", str(manifest), "--framework", "kubernetes", "--output", "json",
         "--compact", "--skip-download", "--skip-check", ",".join(CHECKOV_EXCEPTIONS)],
        capture_output=True, text=True, check=False, timeout=300,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )  # fmt: skip
    report = json.loads(result.stdout)
    failed = [
        f"{c['check_id']} {c['check_name']}: {c['resource']}" for c in report["results"]["failed_checks"]
    ]
    assert failed == [], "\n".join(failed)
    summary = report["summary"]
    assert summary["parsing_errors"] == 0
    checked = {c["resource"] for c in report["results"]["passed_checks"]}
    for workload in rendered(variant).workloads():
        meta = workload["metadata"]
        assert f"{workload['kind']}.{meta['namespace']}.{meta['name']}" in checked, (
            "checkov read every workload"
        )
    assert summary["passed"] > 10 * len(rendered(variant).workloads())
    assert result.returncode == 0, result.stderr


def _all_containers() -> list[tuple[str, Container]]:
    return [(variant, c) for variant in sorted(VARIANTS) for c in rendered(variant).containers()]


def _ids(items: list[tuple[str, Container]]) -> list[str]:
    return [f"{v}:{c.workload_name}/{c.name}" for v, c in items]


CONTAINERS = _all_containers()
PROCESS_CONTAINERS = [(v, c) for v, c in CONTAINERS if c.process is not None]


@pytest.mark.parametrize(("variant", "container"), CONTAINERS, ids=_ids(CONTAINERS))
def test_containers_run_locked_down(variant: str, container: Container) -> None:
    pod, spec = container.pod, container.spec
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] >= 10000, "a UID no host account uses"
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False, "no pod talks to the Kubernetes API"
    assert pod["serviceAccountName"] == container.workload_name, "its own ServiceAccount"
    assert not [key for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key)]
    security = spec["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security.get("privileged", False) is False


@pytest.mark.parametrize(("variant", "container"), CONTAINERS, ids=_ids(CONTAINERS))
def test_containers_have_requests_and_limits(variant: str, container: Container) -> None:
    resources = container.spec["resources"]
    assert set(resources["requests"]) >= {"cpu", "memory"}
    assert set(resources["limits"]) >= {"cpu", "memory"}


@pytest.mark.parametrize(("variant", "container"), CONTAINERS, ids=_ids(CONTAINERS))
def test_images_carry_an_explicit_version(variant: str, container: Container) -> None:
    image = container.spec["image"]
    name, _, tag = image.partition("@")[0].rpartition(":")
    assert name, image
    assert tag, f"{image} has no tag"
    assert "/" not in tag, f"{image} has no tag"
    assert tag != "latest"
    if container.process is not None and "@" not in image:
        version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
        assert tag == version, "the suite's image tag is the version `make image` builds"


@pytest.mark.parametrize(("variant", "container"), CONTAINERS, ids=_ids(CONTAINERS))
def test_every_container_has_startup_readiness_and_liveness_probes(
    variant: str, container: Container
) -> None:
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert probe in container.spec, f"no {probe}"
        assert "exec" not in container.spec[probe] or container.spec[probe]["exec"]["command"][0] not in (
            "sh", "/bin/sh", "bash", "/bin/bash"
        ), "no probe needs a shell"  # fmt: skip


@pytest.mark.parametrize(("variant", "container"), PROCESS_CONTAINERS, ids=_ids(PROCESS_CONTAINERS))
def test_processes_are_probed_over_grpc_health_on_their_plaintext_health_port(
    variant: str, container: Container
) -> None:
    config = ServerConfig.from_env(Env(container.env()), str(container.process), 0)
    assert config.health_listen, "GRPC_HEALTH_LISTEN is set: kubelet gRPC probes cannot speak TLS"
    health_port = int(config.health_listen.rpartition(":")[2])
    assert container.ports().get("health") == health_port, "the health port is declared as `health`"
    assert container.ports().get("grpc") == int(config.listen.rpartition(":")[2]), "grpc is the LISTEN port"
    assert config.listen.startswith("0.0.0.0:")
    assert config.health_listen.startswith("0.0.0.0:")
    # Startup and readiness on grpc.health.v1: readiness must turn NOT_SERVING when a drain starts.
    for probe in ("startupProbe", "readinessProbe"):
        assert container.spec[probe]["grpc"]["port"] == health_port, probe
        assert container.spec[probe]["grpc"].get("service", "") == "", "overall status: NOT_SERVING on stop"
    liveness = container.spec["livenessProbe"]
    if "http" in container.ports():
        # The gateway: alive is its HTTP server (the port outside callers use) answering /healthz.
        assert liveness["httpGet"] == {"path": "/healthz", "port": "http"}
    else:
        assert liveness["grpc"] == {"port": health_port}


@pytest.mark.parametrize(("variant", "container"), PROCESS_CONTAINERS, ids=_ids(PROCESS_CONTAINERS))
def test_termination_grace_covers_the_drain_and_the_liveness_probe_never_cuts_it(
    variant: str, container: Container
) -> None:
    config = ServerConfig.from_env(Env(container.env()), str(container.process), 0)
    shutdown = config.drain_seconds + config.grace_seconds
    assert config.drain_seconds >= 3, "SHUTDOWN_DRAIN leaves endpoints and client DNS time to forget the pod"
    assert container.pod["terminationGracePeriodSeconds"] >= shutdown + 5, "SIGKILL only after drain+grace+5s"
    liveness = container.spec["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] > shutdown
    assert "preStop" not in container.spec.get("lifecycle", {}), "the drain is SHUTDOWN_DRAIN, in the process"


@pytest.mark.parametrize(("variant", "container"), PROCESS_CONTAINERS, ids=_ids(PROCESS_CONTAINERS))
def test_writable_paths_are_volumes_and_the_media_library_is_read_only(
    variant: str, container: Container
) -> None:
    mounts = {m["mountPath"]: m for m in container.spec.get("volumeMounts", [])}
    assert "emptyDir" in container.volume(mounts["/tmp"]["name"]), "a writable /tmp on a read-only root"  # noqa: S108 (a path in the manifest under test, not a file we open)
    for mount in mounts.values():
        volume = container.volume(mount["name"])
        claim = volume.get("persistentVolumeClaim", {})
        if claim.get("claimName") == "media-library":
            # Read-only everywhere but in batch, whose purge of the trash (admin only) deletes files.
            writable = container.process == "batch"
            assert bool(mount.get("readOnly")) is not writable
            assert bool(claim.get("readOnly")) is not writable
        if "configMap" in volume or "secret" in volume:
            assert mount.get("readOnly") is True


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_reference_resolves(variant: str) -> None:
    objects = rendered(variant)
    claims = {o["metadata"]["name"] for o in objects.of_kind("PersistentVolumeClaim")}
    for container in objects.containers():
        container.env()  # every ConfigMap/Secret key an env var names exists (or the operator makes it)
        for volume in container.pod.get("volumes", []):
            if "configMap" in volume:
                assert objects.get("ConfigMap", volume["configMap"]["name"]) is not None, volume
            if "secret" in volume and not volume["secret"].get("optional"):
                name = volume["secret"]["secretName"]
                assert objects.get("Secret", name) is not None or name in OPERATOR_SECRETS, volume
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, volume
        for mount in container.spec.get("volumeMounts", []):
            templates = [
                t["metadata"]["name"] for t in container.workload["spec"].get("volumeClaimTemplates", [])
            ]
            if mount["name"] not in templates:
                container.volume(mount["name"])
    for claim in objects.of_kind("PersistentVolumeClaim"):
        if claim["metadata"]["name"].startswith("media-") and variant != "overlays/dev":
            assert claim["spec"]["accessModes"] == ["ReadWriteMany"], "every replica on any node shares it"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_services_budgets_and_autoscalers_select_real_pods(variant: str) -> None:
    objects = rendered(variant)
    workloads = objects.workloads()
    for service in objects.of_kind("Service"):
        selected = [
            w for w in workloads if selects({"matchLabels": service["spec"]["selector"]}, pod_labels(w))
        ]
        assert len(selected) == 1, service["metadata"]["name"]
        container_ports = {
            key: value
            for c in selected[0]["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
            for key, value in ((p.get("name"), p["containerPort"]), (p["containerPort"], p["containerPort"]))
        }
        for port in service["spec"]["ports"]:
            assert port.get("targetPort", port["port"]) in container_ports, port
    for budget in objects.of_kind("PodDisruptionBudget"):
        assert len([w for w in workloads if selects(budget["spec"]["selector"], pod_labels(w))]) == 1
    assert {b["metadata"]["name"] for b in objects.of_kind("PodDisruptionBudget")} == {
        d["metadata"]["name"] for d in objects.of_kind("Deployment")
    }, "every Deployment has a PodDisruptionBudget (the single Redis has none: nothing to keep up)"
    for hpa in objects.of_kind("HorizontalPodAutoscaler"):
        target = objects.get(hpa["spec"]["scaleTargetRef"]["kind"], hpa["spec"]["scaleTargetRef"]["name"])
        assert target is not None
        for container in target["spec"]["template"]["spec"]["containers"]:
            assert "cpu" in container["resources"]["requests"], "CPU utilization is relative to the request"
    processing = objects.get("Service", "processing")
    assert processing is not None
    assert processing["spec"]["clusterIP"] == "None", "headless: DNS lists replicas"


_UNITS = {"ki": 1024, "mi": 1024**2, "gi": 1024**3, "kb": 1000, "mb": 1000**2, "gb": 1000**3}


def _bytes(text: str) -> int:
    match = re.fullmatch(r"(\d+)([a-zA-Z]*)", text)
    assert match is not None, text
    return int(match[1]) * _UNITS.get(match[2].lower(), 1)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_redis_refuses_writes_before_its_container_is_oom_killed(variant: str) -> None:
    for container in rendered(variant).containers():
        if container.argv()[:1] != ["redis-server"]:
            continue
        argv = container.argv()
        assert argv[argv.index("--appendonly") + 1] == "yes", "append-only persistence"
        maxmemory = _bytes(argv[argv.index("--maxmemory") + 1])
        assert maxmemory < 0.8 * _bytes(container.spec["resources"]["limits"]["memory"])
        assert any(m["mountPath"] == argv[argv.index("--dir") + 1] for m in container.spec["volumeMounts"])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_namespace_enforces_the_restricted_pod_security_standard(variant: str) -> None:
    (namespace,) = rendered(variant).of_kind("Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_policy_exceptions_are_written_down_in_the_deploy_readme() -> None:
    readme = (ROOT / "deploy" / "k8s" / "README.md").read_text()
    for check in CHECKOV_EXCEPTIONS:
        assert re.search(rf"\b{check}\b", readme), f"{check} is not explained in deploy/k8s/README.md"
