"""The gateway's HTTP application (Starlette)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = ["create_app"]

_UNIMPLEMENTED = 12


async def healthz(request: Request) -> JSONResponse:
    """Liveness of the gateway process itself."""
    return JSONResponse({"status": "SERVING"})


async def not_built(request: Request) -> JSONResponse:
    """Routes transcoded from the protos are not built yet: 501 in grpc-gateway's error shape."""
    return JSONResponse(
        {
            "code": _UNIMPLEMENTED,
            "message": f"{request.method} {request.url.path}: HTTP transcoding is not built yet",
            "details": [],
        },
        status_code=501,
    )


def create_app() -> Starlette:
    """The HTTP application."""
    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/v1/{rest:path}", not_built, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ]
    )
