"""The Kubernetes manifests as the tests see them: rendered by ``kubectl kustomize``, then read.

Every check under tests/deploy starts from the rendered objects (never from the source YAML), so
what is checked is what ``kubectl apply -k`` would send to a cluster.
"""

from __future__ import annotations

import base64
import functools
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from services.runtime.suite import PROCESSES

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
# Every kustomization a user applies: the overlays and the documented variants under examples/.
VARIANTS = {
    path.parent.relative_to(K8S).as_posix(): path.parent
    for pattern in ("overlays/*/kustomization.yaml", "examples/*/kustomization.yaml")
    for path in sorted(K8S.glob(pattern))
}
PROCESS_NAMES = tuple(p.name for p in PROCESSES)
MEDIASUITE_IMAGE = re.compile(r"^(?:.+/)?mediasuite(?::[^@]+)?(?:@sha256:[0-9a-f]{64})?$")

# Secrets the operator creates before deploying (deploy/k8s/README.md lists them), with values
# of the right shape so the configuration checks can read what a pod would see.
OPERATOR_SECRETS: dict[str, dict[str, str]] = {
    "mediasuite-redis": {"password": "example-password", "url": "rediss://:example@redis.example:6380/0"},
    "mediasuite-mtls": {"tls.crt": "", "tls.key": "", "ca.crt": ""},
    # The gateway's keys file: `mediactl gateway new-key` entries (a digest, never a key).
    "mediasuite-api-keys": {"keys": "ops:admin:sha256:" + "0" * 64 + "\n"},
}

Obj = dict[str, Any]


def kubectl() -> str:
    """Path of kubectl (it renders kustomizations offline; no cluster is needed)."""
    binary = shutil.which("kubectl")
    if binary is None:
        raise RuntimeError(
            "kubectl is needed to render deploy/k8s (apt install kubectl, or any kubectl >= 1.27)"
        )
    return binary


@functools.cache
def render_text(variant: str) -> str:
    """``kubectl kustomize`` output of one variant ("overlays/dev", ...)."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(VARIANTS[variant])], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {variant} failed:\n{result.stderr}")
    return result.stdout


@dataclass(frozen=True)
class Rendered:
    """The objects of one rendered variant."""

    variant: str
    objects: tuple[Obj, ...]

    def of_kind(self, kind: str) -> list[Obj]:
        """Every object of a kind."""
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> Obj | None:
        """The object of that kind and name, if rendered."""
        return next((o for o in self.of_kind(kind) if o["metadata"]["name"] == name), None)

    def workloads(self) -> list[Obj]:
        """Deployments and StatefulSets."""
        return self.of_kind("Deployment") + self.of_kind("StatefulSet")

    def containers(self) -> Iterator[Container]:
        """Every container of every workload (init containers included)."""
        for workload in self.workloads():
            spec = workload["spec"]["template"]["spec"]
            for key in ("initContainers", "containers"):
                for container in spec.get(key, []):
                    yield Container(self, workload, container)

    def process_containers(self) -> dict[str, Container]:
        """The container that runs each mediasuite process, by process name."""
        found = {c.process: c for c in self.containers() if c.process is not None}
        return found

    def config_data(self, kind: str, name: str) -> dict[str, str]:
        """Data of a rendered ConfigMap or Secret (decoded), or of a Secret the operator creates."""
        obj = self.get(kind, name)
        if obj is None:
            if kind == "Secret" and name in OPERATOR_SECRETS:
                return OPERATOR_SECRETS[name]
            raise AssertionError(
                f"{self.variant}: {kind} {name} is referenced but neither rendered nor documented"
            )
        data = dict(obj.get("data") or {})
        if kind == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in data.items()}
            data.update(obj.get("stringData") or {})
        return data


@functools.cache
def rendered(variant: str) -> Rendered:
    """The parsed objects of one variant."""
    docs = [d for d in yaml.safe_load_all(render_text(variant)) if d]
    return Rendered(variant, tuple(docs))


@dataclass
class Container:
    """One container in its workload."""

    rendered: Rendered = field(repr=False)
    workload: Obj = field(repr=False)
    spec: Obj = field(repr=False)

    @property
    def name(self) -> str:
        """Container name."""
        return str(self.spec["name"])

    @property
    def workload_name(self) -> str:
        """Name of its Deployment/StatefulSet."""
        return str(self.workload["metadata"]["name"])

    @property
    def pod(self) -> Obj:
        """The pod template's spec."""
        return dict(self.workload["spec"]["template"]["spec"])

    @property
    def process(self) -> str | None:
        """The mediasuite process it runs (from its command), or None for other images."""
        if not MEDIASUITE_IMAGE.match(self.spec["image"]):
            return None
        command = self.spec.get("command") or []
        match = re.fullmatch(r"mediasuite-([a-z]+)", command[0]) if command else None
        return match.group(1) if match else None

    def ports(self) -> dict[str, int]:
        """containerPort by name."""
        return {p["name"]: int(p["containerPort"]) for p in self.spec.get("ports", []) if "name" in p}

    def env(self) -> dict[str, str]:
        """The environment the process sees: envFrom, then env, with $(VAR) references expanded."""
        values: dict[str, str] = {}
        for source in self.spec.get("envFrom", []):
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                data = self.rendered.config_data("ConfigMap", source["configMapRef"]["name"])
            else:
                data = self.rendered.config_data("Secret", source["secretRef"]["name"])
            values.update({prefix + k: v for k, v in data.items()})
        for item in self.spec.get("env", []):
            if "value" in item:
                values[item["name"]] = expand(str(item["value"]), values)
            elif "valueFrom" in item:
                ref = item["valueFrom"]
                if "secretKeyRef" in ref:
                    values[item["name"]] = self.rendered.config_data("Secret", ref["secretKeyRef"]["name"])[
                        ref["secretKeyRef"]["key"]
                    ]
                elif "configMapKeyRef" in ref:
                    values[item["name"]] = self.rendered.config_data(
                        "ConfigMap", ref["configMapKeyRef"]["name"]
                    )[ref["configMapKeyRef"]["key"]]
                else:
                    values[item["name"]] = f"<{next(iter(ref))}>"
            else:
                values[item["name"]] = ""
        return values

    def referenced_only(self) -> set[str]:
        """Variables defined only to be expanded into others ($(NAME) in env values or args)."""
        texts = [str(i.get("value", "")) for i in self.spec.get("env", [])]
        texts += [str(a) for a in self.spec.get("args", []) + self.spec.get("command", [])]
        return {name for text in texts for name in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", text)}

    def argv(self) -> list[str]:
        """command + args with $(VAR) expanded as the kubelet does."""
        env = self.env()
        return [expand(str(a), env) for a in self.spec.get("command", []) + self.spec.get("args", [])]

    def write_mounted_files(self, root: Path) -> dict[str, Path]:
        """Each ConfigMap or Secret volume mount as a directory under ``root`` holding its files.

        Returns mountPath -> directory; other volumes (emptyDir, claims) are left out.
        """
        found: dict[str, Path] = {}
        claims = {t["metadata"]["name"] for t in self.workload["spec"].get("volumeClaimTemplates", [])}
        for mount in self.spec.get("volumeMounts", []):
            volume = {} if mount["name"] in claims else self.volume(mount["name"])
            if "configMap" in volume:
                data = self.rendered.config_data("ConfigMap", volume["configMap"]["name"])
            elif "secret" in volume:
                data = self.rendered.config_data("Secret", volume["secret"]["secretName"])
            else:
                continue
            local = root / self.workload_name / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            for name, text in data.items():
                (local / name).write_text(text)
            found[mount["mountPath"]] = local
        return found

    def env_with_mounts(self, root: Path) -> dict[str, str]:
        """env(), with the ConfigMap and Secret mounts written under ``root`` and values naming a
        file under a mount pointed at its copy there (what the process reads, on this machine)."""
        mounts = self.write_mounted_files(root)
        local = self.env()
        for name, value in local.items():
            for mount_path, directory in mounts.items():
                if value == mount_path or value.startswith(mount_path + "/"):
                    local[name] = str(directory) + value[len(mount_path) :]
        return local

    def mount_of(self, path: str) -> tuple[Obj, Obj]:
        """The volumeMount at ``path`` and its pod volume."""
        for mount in self.spec.get("volumeMounts", []):
            if mount["mountPath"] == path:
                return dict(mount), self.volume(mount["name"])
        raise AssertionError(f"{self.workload_name}: nothing is mounted at {path}")

    def volume(self, mount_name: str) -> Obj:
        """The pod volume a mount refers to."""
        for volume in self.pod.get("volumes", []):
            if volume["name"] == mount_name:
                return dict(volume)
        raise AssertionError(f"{self.workload_name}: volumeMount {mount_name} has no volume")


_MEMORY_UNITS = {"": 1, "k": 1000, "M": 1000**2, "G": 1000**3, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}


def cpu_cores(quantity: str | int | float) -> float:
    """A CPU quantity ("2", "500m", 1.5) in cores."""
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def memory_bytes(quantity: str | int) -> int:
    """A memory quantity ("256Mi", "1Gi", "1G", "1048576") in bytes."""
    match = re.fullmatch(r"(\d+)([kMG]i?)?", str(quantity))
    if match is None:
        raise AssertionError(f"memory quantity {quantity!r} not understood here")
    return int(match[1]) * _MEMORY_UNITS[match[2] or ""]


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined names are replaced, $$ escapes, others stay as written."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", replace, text)


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a label selector (matchLabels and matchExpressions In/NotIn/Exists) matches labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        ok = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


def pod_labels(workload: Obj) -> dict[str, str]:
    """Labels of a workload's pods."""
    return dict(workload["spec"]["template"]["metadata"].get("labels") or {})


def service_port(rendered_: Rendered, host: str, port: int) -> tuple[Container, int] | None:
    """The container (and its port) a Service address host:port reaches, if host is a rendered Service."""
    name = host.split(".", maxsplit=1)[0]
    service = rendered_.get("Service", name)
    if service is None:
        return None
    for entry in service["spec"]["ports"]:
        if int(entry["port"]) != port:
            continue
        target = entry.get("targetPort", entry["port"])
        for container in rendered_.containers():
            if not selects({"matchLabels": service["spec"]["selector"]}, pod_labels(container.workload)):
                continue
            ports = container.ports()
            number = ports.get(target) if isinstance(target, str) else int(target)
            if number is not None and number in ports.values():
                return container, number
    return None
