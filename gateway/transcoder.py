"""The HTTP/JSON <-> gRPC transcoder: a plain ASGI application over the route table.

For each request: match a route (404/405), authenticate and authorize (401/403), read the body
within the limit (413), build the request message (400 naming the field), take the deadline
from ``Grpc-Timeout`` (capped), forward selected headers as metadata, call the upstream over its
shared channel, and answer JSON; gRPC errors become grpc-gateway's HTTP statuses and error body.
Server-streaming RPCs are handed to :mod:`gateway.streams`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import grpc
from google.protobuf.message import Message
from google.rpc import code_pb2
from opentelemetry import propagate, trace

from gateway.auth import KeyStore, Principal, Scope
from gateway.codec import JsonOptions, RequestError, build_request, render
from gateway.config import CREDENTIALS, HOP_BY_HOP
from gateway.ratelimit import RateLimiter
from gateway.routes import Match, MethodNotAllowed, Route, RouteTable
from gateway.status import bad_request, error_body, error_info, from_rpc_error
from gateway.upstream import Upstreams
from services.runtime.telemetry import Telemetry

__all__ = [
    "ApiError",
    "Transcoder",
    "TranscoderSettings",
    "json_bytes",
    "send_json",
]

log = logging.getLogger("mediasuite.gateway")

ASGIScope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_TIMEOUT = re.compile(r"^([0-9]{1,8})([HMSmun])$")
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_METADATA_KEY = re.compile(r"^[0-9a-z_.\-]+$")
_RESERVED_PREFIXES = ("grpc-", "mediasuite-", ":")
_TRACE_HEADERS = frozenset({"traceparent", "tracestate", "baggage"})
_JSON = b"application/json"


class ApiError(Exception):
    """An HTTP error answered before (or instead of) a call: status, error body, extra headers."""

    def __init__(
        self, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        super().__init__(body.get("message", ""))
        self.status = status
        self.body = body
        self.headers = headers or []


@dataclass(frozen=True)
class TranscoderSettings:
    """What the transcoder needs from the configuration."""

    auth: bool
    max_body_bytes: int
    max_deadline_seconds: float
    forward_headers: tuple[str, ...]
    json: JsonOptions
    sse_keepalive_seconds: float = 15.0
    rate_limit: float = 0.0
    rate_burst: int = 1


@dataclass(frozen=True)
class Prepared:
    """A request ready to call: the route, the message, the deadline and the metadata."""

    route: Route
    request: Message
    timeout: float | None
    metadata: tuple[tuple[str, str], ...]
    principal: Principal | None
    headers: dict[str, str]


def json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


async def send_json(
    send: Send, status: int, value: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """One complete JSON response."""
    body = json_bytes(value)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", _JSON),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def request_headers(scope: ASGIScope) -> dict[str, str]:
    """Request headers by lower-case name; repeated ones joined with ", "."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def parse_timeout(text: str, maximum: float) -> float:
    """Seconds from a Grpc-Timeout value ("5S", "250m"); ApiError when malformed or above the maximum."""
    match = _TIMEOUT.match(text.strip())
    if match is None:
        raise ApiError(
            *bad_request(
                "Grpc-Timeout", f'expected digits and a unit H, M, S, m, u or n ("5S", "250m"), got {text!r}'
            )
        )
    seconds = int(match.group(1)) * _TIMEOUT_UNITS[match.group(2)]
    if seconds > maximum:
        raise ApiError(
            *error_info(
                code_pb2.INVALID_ARGUMENT,
                f"Grpc-Timeout {text} ({seconds:g}s) exceeds the limit GATEWAY_MAX_DEADLINE={maximum:g}s",
                "LIMIT_EXCEEDED",
                {"limit": "max_deadline_seconds", "maximum": f"{maximum:g}", "env": "GATEWAY_MAX_DEADLINE"},
            )
        )
    return seconds


class Transcoder:
    """ASGI application for the transcoded API (mounted under /v1 by the gateway app)."""

    def __init__(
        self,
        table: RouteTable,
        upstreams: Upstreams,
        keys: KeyStore,
        settings: TranscoderSettings,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.table = table
        self.upstreams = upstreams
        self.keys = keys
        self.settings = settings
        self.telemetry = telemetry or Telemetry()
        self._tracer = self.telemetry.tracer("mediasuite.gateway")
        self.limiter = RateLimiter(settings.rate_limit, settings.rate_burst)

    # ---- shared steps

    def match(self, method: str, raw_path: str) -> Match:
        """The route of a request, or ApiError 404/405."""
        try:
            found = self.table.match(method, raw_path)
        except MethodNotAllowed as error:
            raise ApiError(
                405,
                error_body(code_pb2.UNIMPLEMENTED, f"method {method} is not allowed here; allowed: {error}"),
                [(b"allow", ", ".join(error.allowed).encode())],
            ) from None
        if found is None:
            raise ApiError(404, error_body(code_pb2.NOT_FOUND, f"no route for {method} {raw_path}"))
        return found

    def authorize(self, route: Route, headers: dict[str, str], token: str | None = None) -> Principal | None:
        """The caller, checked against the route's scope: ApiError 401 (who are you?) or 403 (not allowed)."""
        if not self.settings.auth:
            return None
        presented = token
        if presented is None:
            authorization = headers.get("authorization", "")
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                presented = credentials.strip()
            elif "x-api-key" in headers:
                presented = headers["x-api-key"].strip()
        challenge = [(b"www-authenticate", b'Bearer realm="mediasuite"')]
        if not presented:
            raise ApiError(
                401,
                error_body(
                    code_pb2.UNAUTHENTICATED,
                    "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                ),
                challenge,
            )
        principal = self.keys.authenticate(presented)
        if principal is None:
            raise ApiError(
                401,
                error_body(code_pb2.UNAUTHENTICATED, "the API key is not valid (unknown or revoked)"),
                [(b"www-authenticate", b'Bearer realm="mediasuite", error="invalid_token"')],
            )
        if not principal.scope.allows(route.scope):
            raise ApiError(
                403,
                error_body(
                    code_pb2.PERMISSION_DENIED,
                    f"{route.http_method} {route.template.text} needs the {route.scope} scope; "
                    f"key {principal.name!r} has {principal.scope}",
                ),
            )
        return principal

    def throttle(self, scope: ASGIScope, principal: Principal | None) -> None:
        """Spend one request of the caller's rate (its key, or its address without keys): ApiError 429."""
        if not self.limiter.enabled:
            return
        if principal is not None:
            caller, who = f"key:{principal.name}", f"key {principal.name!r}"
        else:
            client = scope.get("client") or ("unknown", 0)
            caller, who = f"addr:{client[0]}", f"address {client[0]}"
        verdict = self.limiter.take(caller)
        if verdict.allowed:
            return
        rate, burst = self.settings.rate_limit, self.settings.rate_burst
        _, body = error_info(
            code_pb2.RESOURCE_EXHAUSTED,
            f"too many requests from {who}: the limit is GATEWAY_RATE_LIMIT={rate:g}/s "
            f"(bursts of GATEWAY_RATE_BURST={burst}); retry after {verdict.retry_after_seconds}s",
            "RATE_LIMITED",
            {"limit": "rate_limit", "maximum": f"{rate:g}", "env": "GATEWAY_RATE_LIMIT"},
        )
        raise ApiError(429, body, [(b"retry-after", str(verdict.retry_after_seconds).encode())])

    def metadata(
        self, headers: dict[str, str], request_id: str, principal: Principal | None
    ) -> tuple[tuple[str, str], ...]:
        """gRPC metadata for the call: request id, caller, selected headers; never hop-by-hop ones."""
        connection_named = {h.strip().lower() for h in headers.get("connection", "").split(",") if h.strip()}
        excluded = HOP_BY_HOP | connection_named
        if self.telemetry.tracing:
            excluded = excluded | _TRACE_HEADERS  # the tracing interceptor writes its own
        pairs: dict[str, str] = {"x-request-id": request_id}
        if principal is not None:
            pairs["mediasuite-principal"] = principal.name
            pairs["mediasuite-scope"] = str(principal.scope)
        elif not self.settings.auth:
            pairs["mediasuite-scope"] = str(Scope.ADMIN)
        for name in self.settings.forward_headers:
            value = headers.get(name)
            # gRPC metadata is printable ASCII: a header that is not is left out (the caller did not ask)
            if value is not None and name not in excluded and value.isascii() and value.isprintable():
                pairs[name] = value
        for name, value in headers.items():
            if name.startswith("grpc-metadata-"):
                key = name.removeprefix("grpc-metadata-")
                # Credentials stay here, whichever header carries them (Grpc-Metadata-Authorization too).
                if (
                    key in excluded
                    or key in CREDENTIALS
                    or key.startswith(_RESERVED_PREFIXES)
                    or not _METADATA_KEY.match(key)
                ):
                    raise ApiError(*bad_request(name, "this metadata key may not be set by callers"))
                pairs[key] = _metadata_value(name, value)
        return tuple(pairs.items())

    async def read_body(self, scope: ASGIScope, receive: Receive, headers: dict[str, str]) -> bytes:
        """The whole body, refused with 413 as soon as it passes the limit."""
        limit = self.settings.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise self.too_large(int(declared))
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ConnectionAbortedError("client went away while sending the body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise self.too_large(size)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def too_large(self, size: int) -> ApiError:
        """413 naming the body limit and its variable."""
        limit = self.settings.max_body_bytes
        _, body = error_info(
            code_pb2.RESOURCE_EXHAUSTED,
            f"request body ({size} bytes) exceeds the limit GATEWAY_MAX_BODY_BYTES={limit}",
            "LIMIT_EXCEEDED",
            {
                "limit": "max_body_bytes",
                "maximum": str(limit),
                "actual": str(size),
                "env": "GATEWAY_MAX_BODY_BYTES",
            },
        )
        return ApiError(413, body)

    def prepare(
        self,
        found: Match,
        scope: ASGIScope,
        headers: dict[str, str],
        body: bytes,
        principal: Principal | None,
    ) -> Prepared:
        """Build the request message, deadline and metadata of a matched, authorized request."""
        route = found.route
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        try:
            request = build_request(
                route.method.input_type,
                body_field=route.body,
                path_params=found.path_params,
                query=query,
                body=body,
            )
        except RequestError as error:
            raise ApiError(*bad_request(error.field, error.description)) from None
        timeout: float | None = None
        if "grpc-timeout" in headers:
            timeout = parse_timeout(headers["grpc-timeout"], self.settings.max_deadline_seconds)
        request_id = scope.get("mediasuite.request_id", "")
        return Prepared(
            route, request, timeout, self.metadata(headers, request_id, principal), principal, headers
        )

    def span(self, scope: ASGIScope, route: Route, headers: dict[str, str]) -> Any:
        """The server span of a request, continuing the caller's trace (traceparent) when tracing is on."""
        if not self.telemetry.tracing:
            return _NO_SPAN
        context = propagate.extract(headers)
        return self._tracer.start_as_current_span(
            f"{route.http_method} {route.template.text}",
            context=context,
            kind=trace.SpanKind.SERVER,
            attributes={
                "http.request.method": route.http_method,
                "http.route": route.template.text,
                "url.path": scope.get("path", ""),
                "rpc.method": route.grpc_path,
                # The id the caller sent or the gateway made (returned as X-Request-Id): find the
                # trace of one request by it.
                "http.request.header.x-request-id": (scope.get("mediasuite.request_id", ""),),
            },
        )

    # ---- ASGI

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            from gateway.streams import serve_websocket

            await serve_websocket(self, scope, receive, send)
            return
        headers = request_headers(scope)
        raw_path = scope.get("raw_path") or scope["path"].encode()
        try:
            found = self.match(scope["method"], raw_path.decode("latin-1").split("?", 1)[0])
            principal = self.authorize(found.route, headers)
            self.throttle(scope, principal)
            body = await self.read_body(scope, receive, headers)
            prepared = self.prepare(found, scope, headers, body, principal)
        except ApiError as error:
            await send_json(send, error.status, error.body, error.headers)
            return
        except ConnectionAbortedError:
            return
        with self.span(scope, prepared.route, headers):
            if prepared.route.server_streaming:
                from gateway.streams import serve_stream

                await serve_stream(self, prepared, receive, send)
            else:
                await self._unary(prepared, send)

    async def _unary(self, prepared: Prepared, send: Send) -> None:
        call = self.upstreams.call(prepared.route)
        try:
            response = await call(prepared.request, timeout=prepared.timeout, metadata=prepared.metadata)
        except grpc.aio.AioRpcError as error:
            status, body = from_rpc_error(error)
            await send_json(send, status, body)
            return
        await send_json(send, 200, render(response, self.settings.json, prepared.route.response_body))


def _metadata_value(name: str, value: str) -> str:
    if not value.isascii() or not value.isprintable():
        raise ApiError(*bad_request(name, "header value must be printable ASCII to be forwarded"))
    return value


class _NoSpan:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_SPAN = _NoSpan()
