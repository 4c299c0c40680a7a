"""The NetworkPolicies allow exactly the calls the design needs, and nothing else.

A small evaluator applies the rendered policies the way the NetworkPolicy API defines them (a pod
selected by a policy of a direction is isolated in that direction; a connection passes when the
source's egress and the destination's ingress both allow it) to every pair of endpoints: our pods,
CoreDNS, a Prometheus in the `monitoring` namespace (and two near misses: a Prometheus elsewhere,
another pod in `monitoring`), a pod in another namespace and an address on the internet. The set of
allowed connections must equal the design's graph.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.k8s import PROCESS_NAMES, VARIANTS, Rendered, pod_labels, rendered, selects


@dataclass(frozen=True)
class Endpoint:
    """Something that can connect or be connected to."""

    name: str
    namespace: str | None  # None: outside the cluster
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    ports: Mapping[str, tuple[int, str]] = field(default_factory=dict, hash=False)  # name -> (port, protocol)
    ip: str = "10.0.0.1"


OUTSIDE_PORTS = {str(p): (p, "TCP") for p in (53, 4317, 6379, 6380, 8080, 50051, 50052, 50053, 50054, 50055)}
NAMESPACE_LABELS = {"kube-system": {"kubernetes.io/metadata.name": "kube-system"}}


def endpoints(objects: Rendered) -> list[Endpoint]:
    """Our pods, CoreDNS, a pod in another namespace and an internet address."""
    namespace = (
        objects.objects[0]["metadata"].get("namespace") or objects.of_kind("Namespace")[0]["metadata"]["name"]
    )
    found = []
    for workload in objects.workloads():
        ports = {
            p["name"]: (int(p["containerPort"]), p.get("protocol", "TCP"))
            for c in workload["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        found.append(Endpoint(workload["metadata"]["name"], namespace, pod_labels(workload), ports))
    found.append(
        Endpoint(
            "kube-dns", "kube-system", {"k8s-app": "kube-dns"}, {"dns": (53, "UDP"), "dns-tcp": (53, "TCP")}
        )
    )
    # Scrapers (their own port is never ours to call): the one allowed, and two near misses.
    prometheus, web = {"app.kubernetes.io/name": "prometheus"}, {"web": (9090, "TCP")}
    found.append(Endpoint("prometheus", "monitoring", prometheus, web, ip="10.0.7.7"))
    found.append(Endpoint("prometheus-elsewhere", "elsewhere", prometheus, web, ip="10.0.8.8"))
    found.append(Endpoint("monitoring-other", "monitoring", {"app": "other"}, web, ip="10.0.7.8"))
    found.append(Endpoint("other-namespace", "elsewhere", {"app": "other"}, OUTSIDE_PORTS, ip="10.0.9.9"))
    found.append(Endpoint("internet", None, {}, OUTSIDE_PORTS, ip="203.0.113.10"))
    return found


def _namespace_labels(namespace: str) -> dict[str, str]:
    return NAMESPACE_LABELS.get(namespace, {"kubernetes.io/metadata.name": namespace})


def _peer_matches(peer: Mapping[str, Any], policy_namespace: str, endpoint: Endpoint) -> bool:
    if "ipBlock" in peer:
        if endpoint.namespace is not None:
            return False  # pod traffic is matched by selectors (ipBlock on pod IPs is left undefined)
        block = peer["ipBlock"]
        address = ipaddress.ip_address(endpoint.ip)
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(e) for e in block.get("except", [])
        )
    if endpoint.namespace is None:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], _namespace_labels(endpoint.namespace)):
            return False
    elif endpoint.namespace != policy_namespace:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], endpoint.labels)


def _port_matches(rule: Mapping[str, Any], target: Endpoint, port: tuple[int, str]) -> bool:
    if not rule.get("ports"):
        return True
    for entry in rule["ports"]:
        if entry.get("protocol", "TCP") != port[1]:
            continue
        wanted = entry.get("port")
        if wanted is None or wanted == port[0]:
            return True
        if isinstance(wanted, str) and target.ports.get(wanted) == port:
            return True
    return False


def _allowed(
    policies: list[dict[str, Any]], direction: str, *, subject: Endpoint, peer: Endpoint, target: Endpoint,
    port: tuple[int, str],
) -> bool:  # fmt: skip
    """Whether the policies selecting ``subject`` allow this connection in ``direction``."""
    if subject.namespace is None:
        return True
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == subject.namespace
        and direction in p["spec"].get("policyTypes", ["Ingress"])
        and selects(p["spec"]["podSelector"], subject.labels)
    ]
    if not selecting:
        return True  # not isolated in this direction
    for policy in selecting:
        for rule in policy["spec"].get(key) or []:
            peers = rule.get(peers_key)
            if (
                not peers or any(_peer_matches(x, policy["metadata"]["namespace"], peer) for x in peers)
            ) and (_port_matches(rule, target, port)):
                return True
    return False


def allowed_connections(objects: Rendered) -> set[tuple[str, str, str]]:
    """Every (source, destination, destination port name) the policies let through."""
    policies = objects.of_kind("NetworkPolicy")
    everything = endpoints(objects)
    ours = {w["metadata"]["name"] for w in objects.workloads()}
    allowed = set()
    for source in everything:
        for target in everything:
            if source == target or not {source.name, target.name} & ours:
                continue  # only connections from or to our pods are ours to police
            for port_name, port in target.ports.items():
                egress = _allowed(policies, "Egress", subject=source, peer=target, target=target, port=port)
                ingress = _allowed(policies, "Ingress", subject=target, peer=source, target=target, port=port)
                if egress and ingress:
                    allowed.add((source.name, target.name, port_name))
    return allowed


def design_graph(variant: str) -> set[tuple[str, str, str]]:
    """The calls the design needs (DESIGN.md's data flow), as (source, destination, port name)."""
    edges = {(p, "otel-collector", "otlp-grpc") for p in PROCESS_NAMES}
    edges |= {("gateway", p, "grpc") for p in ("cache", "processing", "batch", "monitor")}
    edges |= {("batch", "processing", "grpc"), ("batch", "cache", "grpc"), ("processing", "cache", "grpc")}
    edges |= {("monitor", p, "health") for p in PROCESS_NAMES if p != "monitor"}
    edges |= {("otel-collector", "monitor", "grpc")}
    # Prometheus scrapes the monitor's /metrics (MONITOR_HTTP_LISTEN): the only way to read the suite's
    # metrics without a gRPC client, so the one port opened to another namespace besides the gateway's.
    edges |= {("prometheus", "monitor", "metrics")}
    outsiders = ("internet", "other-namespace", "kube-dns", "prometheus", "prometheus-elsewhere")
    edges |= {(outside, "gateway", "http") for outside in (*outsiders, "monitoring-other")}
    users = ("cache", "batch", "monitor")
    if variant.endswith("external-redis"):
        edges |= {
            (u, where, port)
            for u in users
            for where in ("internet", "other-namespace")
            for port in ("6379", "6380")
        }
    else:
        edges |= {(u, "redis", "redis") for u in users}
    if variant != "overlays/dev":  # the traces-otlp component: the collector reaches a tracing backend
        edges |= {("otel-collector", where, "4317") for where in ("internet", "other-namespace")}
    workloads = [*PROCESS_NAMES, "otel-collector", *([] if variant.endswith("external-redis") else ["redis"])]
    edges |= {(w, "kube-dns", port) for w in workloads for port in ("dns", "dns-tcp")}
    return edges


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_network_policies_allow_exactly_the_designed_calls(variant: str) -> None:
    allowed = allowed_connections(rendered(variant))
    wanted = design_graph(variant)
    assert sorted(allowed - wanted) == [], "allowed but not needed"
    assert sorted(wanted - allowed) == [], "needed but blocked"


def test_the_evaluator_sees_an_open_policy() -> None:
    """The evaluator is not vacuous: a policy that opens everything shows up as extra connections."""
    objects = rendered("overlays/dev")
    namespace = objects.of_kind("Namespace")[0]["metadata"]["name"]
    open_all = {
        "kind": "NetworkPolicy",
        "metadata": {"name": "open", "namespace": namespace},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [{}], "egress": [{}]},
    }
    extra = allowed_connections(Rendered(objects.variant, (*objects.objects, open_all))) - design_graph(
        "overlays/dev"
    )
    assert ("internet", "redis", "redis") in extra
    assert ("gateway", "redis", "redis") in extra
    assert ("prometheus-elsewhere", "monitor", "metrics") in extra


def test_only_the_labelled_prometheus_in_monitoring_may_scrape_the_monitor() -> None:
    """The scrape rule is narrow: namespace and pod label both, on the metrics port only."""
    allowed = allowed_connections(rendered("overlays/prod"))
    into_monitor = {(source, port) for source, target, port in allowed if target == "monitor"}
    assert into_monitor == {("gateway", "grpc"), ("otel-collector", "grpc"), ("prometheus", "metrics")}
