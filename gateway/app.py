"""The gateway's HTTP application: the transcoded API under /v1, the dashboard, the docs.

Every response carries ``X-Request-Id`` (the caller's, when it sent a sane one, else a new one)
and security headers; the pages get a strict Content-Security-Policy. Static files are served
from a fixed in-memory table built at start from ``gateway/static``: a name not in the table is
404, so there is no directory listing and no way out of the directory.
"""

from __future__ import annotations

import logging
import mimetypes
import re
import uuid
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.auth import KeyStore
from gateway.codec import JsonOptions
from gateway.config import GatewayConfig
from gateway.openapi import build_openapi
from gateway.protodocs import docs_for
from gateway.routes import RouteTable, build_routes, suite_services
from gateway.status import error_body
from gateway.transcoder import (
    ASGIScope,
    Receive,
    Send,
    Transcoder,
    TranscoderSettings,
    json_bytes,
    send_json,
)
from gateway.upstream import Upstreams
from services.runtime.telemetry import Telemetry

__all__ = ["Gateway", "HttpGateway", "StaticFiles", "create_app", "load_static"]

log = logging.getLogger("mediasuite.gateway")

STATIC_DIR = Path(__file__).resolve().parent / "static"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_API_PREFIX = "/v1/"
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class StaticFiles:
    """Files served by exact name only: name -> (bytes, content type)."""

    files: Mapping[str, tuple[bytes, str]]

    def get(self, name: str) -> tuple[bytes, str] | None:
        """The file called ``name`` (no directories), or None."""
        return self.files.get(name)


def load_static(directory: Path = STATIC_DIR) -> StaticFiles:
    """Read the static directory once (files directly in it; sub-directories are not served)."""
    files: dict[str, tuple[bytes, str]] = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if kind.startswith("text/") or kind in ("application/javascript", "application/json"):
                kind += "; charset=utf-8"
            files[path.name] = (path.read_bytes(), kind)
    return StaticFiles(files)


@dataclass(frozen=True)
class HttpGateway:
    """The built HTTP side: the ASGI app, its upstream clients (close them when done), its routes."""

    asgi: Any
    upstreams: Upstreams
    table: RouteTable


class Gateway:
    """The top ASGI application: request ids and security headers around the API and the pages."""

    def __init__(self, transcoder: Transcoder, pages: Any) -> None:
        self.transcoder = transcoder
        self.pages = pages

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.pages(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _REQUEST_ID.match(candidate):
                    request_id = candidate
                break
        if not request_id:
            request_id = uuid.uuid4().hex
        scope["mediasuite.request_id"] = request_id
        rid = request_id.encode()
        started = False

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if message["type"] in ("http.response.start", "websocket.accept"):
                started = True
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.append((b"x-request-id", rid))
                headers.extend(h for h in _SECURITY_HEADERS if h[0] not in present)
                message["headers"] = headers
            await send(message)

        target = self.transcoder if scope["path"].startswith(_API_PREFIX) else self.pages
        try:
            await target(scope, receive, send_with_headers)
        except Exception as error:
            # A bug, not a caller's mistake: log the traceback under an id, answer 500 with the id only.
            error_id = uuid.uuid4().hex[:12]
            log.error(
                "unhandled error in %s %s (error id %s)",
                scope.get("method", "WEBSOCKET"),
                scope["path"],
                error_id,
                exc_info=error,
                extra={"fields": {"error_id": error_id, "request_id": request_id}},
            )
            if started or scope["type"] != "http":
                raise
            body = error_body(13, f"internal error (error id {error_id}); the gateway logged the details")
            await send_json(send_with_headers, 500, body)


def _pages(static: StaticFiles, openapi: bytes, table: RouteTable) -> Starlette:
    def page_response(name: str) -> Response:
        found = static.get(name)
        if found is None:
            return JSONResponse(
                {"code": 5, "message": f"no such file: {name}", "details": []}, status_code=404
            )
        content, kind = found
        headers = {"cache-control": "no-cache"}
        if kind.startswith("text/html"):
            headers["content-security-policy"] = PAGE_CSP
        return Response(content, media_type=kind, headers=headers)

    async def dashboard(request: Request) -> Response:
        """The live dashboard page."""
        return page_response("index.html")

    async def docs(request: Request) -> Response:
        """The API reference page, rendered from /openapi.json."""
        return page_response("docs.html")

    async def static_file(request: Request) -> Response:
        """A file of gateway/static by exact name."""
        return page_response(request.path_params["name"])

    async def openapi_json(request: Request) -> Response:
        """The OpenAPI 3 document of every route."""
        return Response(openapi, media_type="application/json", headers={"cache-control": "no-cache"})

    async def routes_text(request: Request) -> Response:
        """The route table as text, one route a line."""
        return Response(table.describe() + "\n", media_type="text/plain; charset=utf-8")

    async def healthz(request: Request) -> JSONResponse:
        """Liveness of the gateway process itself."""
        return JSONResponse({"status": "SERVING"})

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse(
            {"code": 5, "message": f"no page at {request.url.path}", "details": []}, status_code=404
        )

    return Starlette(
        routes=[
            Route("/", dashboard, methods=["GET"]),
            Route("/docs", docs, methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            Route("/routes", routes_text, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/static/{name}", static_file, methods=["GET"]),
        ],
        exception_handlers={404: not_found},
    )


def create_app(
    config: GatewayConfig,
    *,
    telemetry: Telemetry | None = None,
    table: RouteTable | None = None,
    upstreams: Upstreams | None = None,
    static: StaticFiles | None = None,
) -> HttpGateway:
    """The whole HTTP application, built from the configuration and the route table."""
    table = table if table is not None else build_routes(suite_services())
    upstreams = upstreams or Upstreams(
        config.upstreams,
        telemetry=telemetry,
        deadline_seconds=config.server.client_deadline_seconds,
        max_message_bytes=config.server.max_message_bytes,
        tls=config.server.tls,
    )
    settings = TranscoderSettings(
        auth=config.auth,
        max_body_bytes=config.max_body_bytes,
        max_deadline_seconds=config.max_deadline_seconds,
        forward_headers=config.forward_headers,
        json=JsonOptions(proto_names=config.json_proto_names, emit_defaults=config.json_emit_defaults),
        sse_keepalive_seconds=config.sse_keepalive_seconds,
        rate_limit=config.rate_limit,
        rate_burst=config.rate_burst,
    )
    transcoder = Transcoder(table, upstreams, KeyStore(config.keys), settings, telemetry)
    docs = docs_for(
        {r.method.containing_service.full_name: r.method.containing_service for r in table.routes}.values()
    )
    openapi = json_bytes(
        build_openapi(table, auth=config.auth, proto_names=config.json_proto_names, docs=docs)
    )
    app: Any = Gateway(transcoder, _pages(static or load_static(), openapi, table))
    if config.cors_origins:
        app = CORSMiddleware(
            app,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[
                "authorization",
                "content-type",
                "x-api-key",
                "x-request-id",
                "grpc-timeout",
                "traceparent",
                "tracestate",
            ],
            expose_headers=["x-request-id"],
            max_age=600,
        )
    return HttpGateway(app, upstreams, table)
