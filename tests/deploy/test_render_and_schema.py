"""Every kustomization renders, and every rendered object is valid Kubernetes of the named versions."""

from __future__ import annotations

from collections import Counter

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from tests.support.k8s import PROCESS_NAMES, VARIANTS, rendered

# The oldest Kubernetes we support (native gRPC probes are GA since 1.27, matchLabelKeys in
# topology spread constraints and StatefulSet PVC retention are on by default since 1.27) and the
# newest schema kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")


def test_every_overlay_and_example_is_found() -> None:
    assert {"overlays/dev", "overlays/prod"} <= set(VARIANTS)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_validates_against_the_kubernetes_schema(variant: str, version: str) -> None:
    errors = []
    for obj in rendered(variant).objects:
        try:
            # strict: a misspelt or misplaced field is an error, not silently ignored.
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {error.message} at {list(error.path)}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_process_has_its_objects(variant: str) -> None:
    objects = rendered(variant)
    for name in PROCESS_NAMES:
        for kind in ("Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "NetworkPolicy"):
            assert objects.get(kind, name) is not None, f"{variant}: no {kind} {name}"
    assert set(objects.process_containers()) == set(PROCESS_NAMES)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_names_are_unique_and_namespaced(variant: str) -> None:
    objects = rendered(variant).objects
    keys = Counter((o["kind"], o["metadata"]["name"]) for o in objects)
    assert [k for k, n in keys.items() if n > 1] == []
    namespaces = {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"}
    declared = [o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"]
    assert len(namespaces) == 1, "every object lives in the overlay's namespace"
    assert None not in namespaces
    assert declared == list(namespaces), "the overlay creates its namespace"


def test_dev_runs_one_replica_of_everything_and_prod_scales() -> None:
    dev, prod = rendered("overlays/dev"), rendered("overlays/prod")
    assert {w["metadata"]["name"]: w["spec"].get("replicas", 1) for w in dev.workloads()} == {
        w["metadata"]["name"]: 1 for w in dev.workloads()
    }
    assert dev.of_kind("HorizontalPodAutoscaler") == []
    hpa = prod.get("HorizontalPodAutoscaler", "processing")
    assert hpa is not None
    assert hpa["spec"]["minReplicas"] >= 2
    assert "replicas" not in prod.get("Deployment", "processing")["spec"], "the autoscaler owns the count"  # type: ignore[index]
    assert prod.get("Deployment", "gateway")["spec"]["replicas"] >= 2  # type: ignore[index]
    assert prod.get("Deployment", "cache")["spec"]["replicas"] >= 2  # type: ignore[index]
