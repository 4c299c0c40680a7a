"""Every config file shipped in deploy/k8s/base/config/ is read by the loader of the process that reads it.

Who reads a file is derived from the rendered manifests, not listed here: the ConfigMap generated
from the file, the containers that mount it, and the setting (or argument) that points at the file
under the mount. A mediasuite process's file is loaded with that process's own loader, registered in
LOADERS by the setting's name (the monitor's alert rules, the cache's namespace policies). A file
that a process mounts but no setting points at fails the test (an operator would edit it to no
effect), and so does a setting without its loader here (three tests below show the failures).
The OpenTelemetry Collector's loader is its binary, which does not run here: its file is checked for
what the suite relies on (README.md, "What only a cluster can check", has the binary's own check).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.util.types import Attributes

from services.cache.config import CacheConfig
from services.cache.namespaces import DEFAULT_POLICIES, read_namespace_file
from services.cli.suite import process_settings
from services.monitor.app_metrics import AppMetrics
from services.monitor.monitor import SELF_METRICS
from services.monitor.otlp import batches
from services.monitor.rules import DEFAULT_RULES, load_rules
from services.monitor.sampling import METRICS as SYSTEM_METRICS
from services.runtime.config import ConfigError, Env, Setting
from tests.support.k8s import K8S, VARIANTS, Container, Rendered, rendered, service_port

CONFIG = K8S / "base" / "config"
FILES = sorted(p.name for p in CONFIG.iterdir() if p.is_file())


def _cache_namespaces(path: Path) -> object:
    """What the cache does with CACHE_NAMESPACES_FILE at start (ConfigError naming what is wrong)."""
    return CacheConfig.from_env(Env({"CACHE_NAMESPACES_FILE": str(path)})).namespaces


# The loader of each setting that names a shipped file, by setting: the process's own start-up code.
LOADERS: dict[str, Callable[[Path], object]] = {
    "MONITOR_RULES_FILE": load_rules,
    "CACHE_NAMESPACES_FILE": _cache_namespaces,
}
# Name spaces of the metrics the monitor makes itself: a rule there must name one it makes.
MONITOR_OWN = ("system.", "process.", "monitor.", "rpc.server.")


def test_the_shipped_files_are_found() -> None:
    assert {"alert-rules.yaml", "cache-ttls.toml", "collector.yaml"} <= set(FILES)


def _readers(objects: Rendered, file_name: str) -> list[tuple[Container, str, list[str]]]:
    """(container, path of the file in it, the settings or arguments naming that path)."""
    text = (CONFIG / file_name).read_text()
    config_maps = {
        c["metadata"]["name"]
        for c in objects.of_kind("ConfigMap")
        if (c.get("data") or {}).get(file_name) == text
    }
    assert config_maps, f"{objects.variant}: no ConfigMap carries base/config/{file_name} as it is"
    found = []
    for container in objects.containers():
        for mount in container.spec.get("volumeMounts", []):
            volume: dict[str, Any] = next(
                (v for v in container.pod.get("volumes", []) if v["name"] == mount["name"]), {}
            )
            if volume.get("configMap", {}).get("name") not in config_maps:
                continue
            path = f"{mount['mountPath']}/{file_name}"
            pointers = [name for name, value in container.env().items() if value == path]
            pointers += [arg for arg in container.argv() if arg == path or arg.endswith(f"={path}")]
            found.append((container, path, pointers))
    return found


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("file_name", FILES)
def test_each_file_loads_with_the_loader_of_the_process_that_reads_it(
    variant: str, file_name: str, tmp_path: Path
) -> None:
    _check_file(rendered(variant), file_name, tmp_path, process_settings(), LOADERS)


def _without_env(objects: Rendered, workload: str, name: str) -> Rendered:
    """The rendered objects with one variable removed from a workload's containers (a copy)."""
    changed = copy.deepcopy(list(objects.objects))
    for obj in changed:
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] == workload:
            for container in obj["spec"]["template"]["spec"]["containers"]:
                container["env"] = [e for e in container.get("env", []) if e["name"] != name]
    return Rendered(objects.variant, tuple(changed))


def test_a_process_that_reads_a_file_setting_fails_while_the_mounted_file_is_not_named(
    tmp_path: Path,
) -> None:
    """Not vacuous: the cache's pod as it was before CACHE_NAMESPACES_FILE was wired fails the check."""
    unwired = _without_env(rendered("overlays/dev"), "cache", "CACHE_NAMESPACES_FILE")
    with pytest.raises(AssertionError, match=r"cache now reads \['CACHE_NAMESPACES_FILE'\]"):
        _check_file(unwired, "cache-ttls.toml", tmp_path, process_settings(), LOADERS)


def _with_mount(objects: Rendered, workload: str, source: str, volume: str) -> Rendered:
    """The rendered objects with ``source``'s volume ``volume`` also mounted into ``workload`` (a copy)."""
    changed = copy.deepcopy(list(objects.objects))
    pods = {
        obj["metadata"]["name"]: obj["spec"]["template"]["spec"]
        for obj in changed
        if obj["kind"] == "Deployment"
    }
    (wanted,) = [v for v in pods[source]["volumes"] if v["name"] == volume]
    (mount,) = [
        m for c in pods[source]["containers"] for m in c.get("volumeMounts", []) if m["name"] == volume
    ]
    pods[workload].setdefault("volumes", []).append(wanted)
    for container in pods[workload]["containers"]:
        container.setdefault("volumeMounts", []).append(mount)
    return Rendered(objects.variant, tuple(changed))


def test_a_file_mounted_into_a_process_that_reads_no_setting_naming_it_fails(tmp_path: Path) -> None:
    """Not vacuous: the monitor's alert rules also mounted into batch (which reads no file) fail."""
    stray = _with_mount(rendered("overlays/dev"), "batch", "monitor", "alert-rules")
    with pytest.raises(AssertionError, match=r"mounted into batch at .* reads no setting naming it"):
        _check_file(stray, "alert-rules.yaml", tmp_path, process_settings(), LOADERS)


def test_a_setting_naming_a_file_needs_its_loader_registered(tmp_path: Path) -> None:
    """Not vacuous: a file setting without its loader here fails instead of passing unread."""
    loaders = {k: v for k, v in LOADERS.items() if k != "CACHE_NAMESPACES_FILE"}
    with pytest.raises(AssertionError, match="add its loader to LOADERS"):
        _check_file(rendered("overlays/dev"), "cache-ttls.toml", tmp_path, process_settings(), loaders)


def test_the_cache_loader_refuses_what_the_cache_would_refuse(tmp_path: Path) -> None:
    """The registered loader is the cache's start-up check: a bad duration stops it, naming where."""
    bad = tmp_path / "cache-ttls.toml"
    bad.write_text(
        (CONFIG / "cache-ttls.toml").read_text().replace('default_ttl = "1h"', 'default_ttl = "soon"', 1)
    )
    with pytest.raises(ConfigError, match=r"CACHE_NAMESPACES_FILE.*namespaces\.image_analysis"):
        LOADERS["CACHE_NAMESPACES_FILE"](bad)


def test_the_base_ships_the_caches_default_namespaces_written_out() -> None:
    """Every policy spelled out (read with no defaults to fall back on): the design's, in one place."""
    assert read_namespace_file(CONFIG / "cache-ttls.toml", {}) == list(DEFAULT_POLICIES)


def _check_file(
    objects: Rendered,
    file_name: str,
    tmp_path: Path,
    settings: dict[str, list[Setting]],
    loaders: dict[str, Callable[[Path], object]],
) -> None:
    variant = objects.variant
    readers = _readers(objects, file_name)
    assert readers, f"{file_name} is shipped but mounted into no container of {variant}"
    unread = []
    for container, path, pointers in readers:
        local = tmp_path / container.workload_name / file_name
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text((CONFIG / file_name).read_text())
        if container.process is None:
            assert container.workload_name == "otel-collector", (
                f"{container.workload_name} reads {file_name}?"
            )
            assert pointers == [f"--config={path}"], container.argv()
            _check_collector_config(objects, yaml.safe_load(local.read_text()))
            continue
        if not pointers:
            unread.append((container, path))
            continue
        for setting in pointers:
            loader = loaders.get(setting)
            assert loader is not None, (
                f"{container.process} reads {file_name} through {setting}: add its loader to LOADERS"
            )
            loader(local)  # raises, naming the line, on a file the process would refuse at start
    for container, path in unread:
        process = str(container.process)
        file_settings = sorted(s.name for s in settings[process] if s.name.endswith("_FILE"))
        unset = [name for name in file_settings if not container.env().get(name)]
        assert unset == [], (
            f"{process} now reads {unset} but its pod leaves them unset while {file_name} is mounted "
            f"at {path}: point the setting at it in base/{process}.yaml (converting the file to the "
            "format the process reads) and add the setting's loader to LOADERS"
        )
        raise AssertionError(
            f"{file_name} is mounted into {process} at {path}, but {process} reads no setting naming it "
            "(an operator would edit it to no effect): point a setting of the process at it, or stop "
            "mounting it"
        )


def _rpc_metric_names() -> set[str]:
    """What the monitor makes of the suite's RPC histogram (a real SDK export through AppMetrics)."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        resource=Resource.create({SERVICE_NAME: "mediasuite-cache"}), metric_readers=[reader]
    )
    attributes: Attributes = {"rpc.service": "s", "rpc.method": "m", "rpc.grpc.status_code": 14}
    provider.get_meter("test").create_histogram("rpc.server.duration", unit="ms").record(2.0, attributes)
    data = reader.get_metrics_data()
    provider.shutdown()
    assert data is not None
    app = AppMetrics(100)
    return {sample.name for batch in batches(encode_metrics(data)) for sample in app.ingest(batch)}


def test_every_alert_rule_watches_a_metric_the_monitor_makes() -> None:
    """A rule on a name in the monitor's own name spaces never fires unless the monitor makes that name."""
    made = set(SYSTEM_METRICS) | set(SELF_METRICS) | _rpc_metric_names()
    assert "rpc.server.error_rate" in made
    rules = load_rules(CONFIG / "alert-rules.yaml")
    for rule in rules:
        if rule.metric.startswith(MONITOR_OWN):
            assert rule.metric in made, f"rule {rule.name}: the monitor makes no {rule.metric}"


def test_the_base_ships_the_monitors_default_rules_written_out() -> None:
    """The base is the design's defaults (the original thresholds), editable in one place."""
    assert load_rules(CONFIG / "alert-rules.yaml") == DEFAULT_RULES


def _check_collector_config(objects: Rendered, config: dict[str, Any]) -> None:
    """What the suite relies on in the collector's file (its binary, the real loader, is not here)."""
    service = config["service"]
    for extension in service.get("extensions", []):
        assert extension in config.get("extensions", {}), extension
    for name, pipeline in service["pipelines"].items():
        for section in ("receivers", "processors", "exporters"):
            for component in pipeline.get(section, []):
                assert component in config.get(section, {}), (
                    f"pipeline {name}: {section} {component} undefined"
                )
    assert "otlp/monitor" in service["pipelines"]["metrics"]["exporters"], "metrics go on to the monitor"
    collector = next(c for c in objects.containers() if c.workload_name == "otel-collector")
    ports = collector.ports()
    receiver = config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert int(receiver.rpartition(":")[2]) == ports["otlp-grpc"], "the receiver listens on the declared port"
    health = config["extensions"]["health_check"]["endpoint"]
    assert int(health.rpartition(":")[2]) == ports["health"], "the probes' port is the health_check's"
    host, _, port = config["exporters"]["otlp/monitor"]["endpoint"].rpartition(":")
    reached = service_port(objects, host, int(port))
    assert reached is not None, f"otlp/monitor endpoint {host}:{port} is no Service port"
    target, number = reached
    # The monitor serves the OTLP MetricsService on its main gRPC port (services/monitor/server.py).
    assert (target.process, number) == ("monitor", target.ports()["grpc"])
