"""The route table: one HTTP route per google.api.http binding of every public RPC.

Built at start from the service descriptors the generated ``*_pb2`` modules register, so a new
annotated RPC gets its route with no code here. Each binding (the rule and its
``additional_bindings``) becomes a :class:`Route`; client-streaming RPCs have no HTTP form and are
skipped.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor, ServiceDescriptor

from gateway.auth import Scope, scope_for
from gateway.pathtemplate import PathTemplate, TemplateError
from services.runtime.suite import PROCESSES

__all__ = [
    "Match",
    "MethodNotAllowed",
    "Route",
    "RouteTable",
    "Upstream",
    "build_routes",
    "suite_services",
]

log = logging.getLogger("mediasuite.gateway")

_METHODS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class Upstream:
    """A gRPC service and the process (upstream name) that serves it."""

    service: ServiceDescriptor
    upstream: str


@dataclass(frozen=True)
class Route:
    """One HTTP binding of one RPC."""

    http_method: str
    template: PathTemplate
    method: MethodDescriptor
    upstream: str
    body: str  # "" (no body), "*" (the whole request) or a top-level field name
    response_body: str  # "" (the whole response) or a top-level field name
    scope: Scope

    @property
    def grpc_path(self) -> str:
        """The gRPC method path ("/mediasuite.cache.v1.CacheService/Get")."""
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def server_streaming(self) -> bool:
        """Whether the RPC streams its responses."""
        return bool(self.method.server_streaming)

    @property
    def operation_id(self) -> str:
        """A unique name of the route ("CacheService_Get", "..._Get_1" for additional bindings)."""
        return f"{self.method.containing_service.name}_{self.method.name}"

    def describe(self) -> str:
        """One line for people: "GET /v1/... -> mediasuite.cache.v1.CacheService.Get (read)"."""
        extras = []
        if self.body:
            extras.append(f"body={self.body}")
        if self.response_body:
            extras.append(f"response_body={self.response_body}")
        if self.server_streaming:
            extras.append("stream")
        extra = f" [{', '.join(extras)}]" if extras else ""
        return f"{self.http_method:<6} {self.template.text} -> {self.method.full_name} ({self.scope}){extra}"


@dataclass(frozen=True)
class Match:
    """A route that matched a request, with its path variables decoded."""

    route: Route
    path_params: dict[str, str]


class MethodNotAllowed(Exception):
    """The path matches routes, but none for this HTTP method."""

    def __init__(self, allowed: Sequence[str]) -> None:
        super().__init__(", ".join(allowed))
        self.allowed = tuple(allowed)


class RouteTable:
    """Every route, matched most specific first: verbs, then more literal segments, then fewer wildcards."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = sorted(routes, key=_specificity)
        self._by_method: dict[str, list[Route]] = {}
        for route in self.routes:
            self._by_method.setdefault(route.http_method, []).append(route)

    def match(self, http_method: str, raw_path: str) -> Match | None:
        """The route for a request; None when no route has the path; MethodNotAllowed when others do."""
        for route in self._by_method.get(http_method, ()):
            params = route.template.match(raw_path)
            if params is not None:
                return Match(route, params)
        allowed = sorted(
            {
                r.http_method
                for r in self.routes
                if r.http_method != http_method and r.template.match(raw_path)
            }
        )
        if allowed:
            raise MethodNotAllowed(allowed)
        return None

    def describe(self) -> str:
        """The table for people, one route a line."""
        ordered = sorted(self.routes, key=lambda r: (r.template.text, r.http_method))
        return "\n".join(route.describe() for route in ordered)


def _specificity(route: Route) -> tuple[int, int, int, str]:
    many = sum(1 for v in route.template.variables if v.multi_segment)
    return (0 if route.template.verb else 1, -route.template.literal_segments, many, route.template.text)


def suite_services() -> list[Upstream]:
    """Every service of the suite (from the processes table), with the generated modules imported."""
    import mediasuite

    # The generated packages are namespace packages (no __init__.py): find the modules by file.
    for root in {Path(p) for p in mediasuite.__path__ if Path(p).is_dir()}:
        for file in sorted(root.rglob("*_pb2.py")):
            relative = file.relative_to(root).with_suffix("")
            importlib.import_module(".".join(("mediasuite", *relative.parts)))
    pool = descriptor_pool.Default()
    return [Upstream(pool.FindServiceByName(name), proc.name) for proc in PROCESSES for name in proc.services]


def build_routes(upstreams: Iterable[Upstream]) -> RouteTable:
    """The route table of the given services; TemplateError or ValueError names a bad annotation."""
    routes: list[Route] = []
    for upstream in upstreams:
        for method in upstream.service.methods:
            options = method.GetOptions()
            if not options.HasExtension(annotations_pb2.http):
                continue
            if method.client_streaming:
                log.info("%s streams its requests: no HTTP route", method.full_name)
                continue
            rule = options.Extensions[annotations_pb2.http]
            for binding in [rule, *rule.additional_bindings]:
                routes.append(_route(method, binding, upstream.upstream))
    seen: dict[tuple[str, str], Route] = {}
    for route in routes:
        key = (route.http_method, route.template.regex.pattern)
        if key in seen:
            raise ValueError(
                f"{route.http_method} {route.template.text} is bound twice: "
                f"{seen[key].method.full_name} and {route.method.full_name}"
            )
        seen[key] = route
    return RouteTable(routes)


def _route(method: MethodDescriptor, rule: http_pb2.HttpRule, upstream: str) -> Route:
    pattern = rule.WhichOneof("pattern")
    if pattern is None:
        raise ValueError(f"{method.full_name}: google.api.http rule without a method and path")
    if pattern == "custom":
        http_method, text = rule.custom.kind.upper(), rule.custom.path
    else:
        http_method, text = pattern.upper(), getattr(rule, pattern)
    try:
        template = PathTemplate.parse(text)
    except TemplateError as error:
        raise TemplateError(f"{method.full_name}: {error}") from None
    for variable in template.variables:
        _resolve(method, variable.field_path, scalar=True)
    if rule.body not in ("", "*"):
        _resolve(method, (rule.body,), scalar=False)
    if rule.response_body and rule.response_body not in method.output_type.fields_by_name:
        raise ValueError(
            f"{method.full_name}: response_body {rule.response_body!r} is not a field of "
            f"{method.output_type.full_name}"
        )
    if method.server_streaming and rule.response_body:
        raise ValueError(f"{method.full_name}: response_body is not supported on a streaming RPC")
    return Route(
        http_method=http_method,
        template=template,
        method=method,
        upstream=upstream,
        body=rule.body,
        response_body=rule.response_body,
        scope=scope_for(http_method, method.full_name),
    )


def _resolve(method: MethodDescriptor, path: Sequence[str], *, scalar: bool) -> FieldDescriptor:
    message = method.input_type
    found: FieldDescriptor | None = None
    for i, name in enumerate(path):
        found = message.fields_by_name.get(name)
        if found is None:
            raise ValueError(
                f"{method.full_name}: {'.'.join(path)!r} is not a field of {method.input_type.full_name}"
            )
        if i < len(path) - 1:
            if found.message_type is None or _is_repeated(found):
                raise ValueError(f"{method.full_name}: {'.'.join(path[: i + 1])!r} is not a singular message")
            message = found.message_type
    assert found is not None  # noqa: S101 (narrows a type: an invariant of the code above, not a check of input)
    if scalar and (_is_repeated(found) or found.message_type is not None):
        raise ValueError(f"{method.full_name}: path variable {'.'.join(path)!r} must be a singular scalar")
    return found


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)
