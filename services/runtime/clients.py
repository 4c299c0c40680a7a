"""Client channels to other services: retry policy in the service config, a default deadline,
round-robin balancing over every address a target resolves to, and tracing when it is on."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import grpc

from services.runtime.telemetry import Telemetry
from services.runtime.tls import TlsConfig

__all__ = ["DefaultDeadline", "channel_options", "open_channel", "service_config"]


def service_config(*, retry_deadline_exceeded: bool = False, max_attempts: int = 4) -> str:
    """The gRPC service config JSON: round_robin, and retries of UNAVAILABLE with backoff.

    DEADLINE_EXCEEDED is retried only when the caller says its calls are idempotent. With
    ``max_attempts`` below 2 calls are not retried (for best-effort dependencies that must fail fast).
    """
    codes = ["UNAVAILABLE", *(["DEADLINE_EXCEEDED"] if retry_deadline_exceeded else [])]
    method: dict[str, Any] = {"name": [{}]}
    if max_attempts >= 2:
        method["retryPolicy"] = {
            "maxAttempts": max_attempts,
            "initialBackoff": "0.05s",
            "maxBackoff": "2s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": codes,
        }
    return json.dumps({"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": [method]})


def channel_options(
    max_message_bytes: int, *, retry_deadline_exceeded: bool = False, max_attempts: int = 4
) -> list[tuple[str, Any]]:
    """Channel arguments: message sizes, keepalive, the service config."""
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.enable_retries", 1),
        (
            "grpc.service_config",
            service_config(retry_deadline_exceeded=retry_deadline_exceeded, max_attempts=max_attempts),
        ),
    ]


class DefaultDeadline(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[type-arg]
    """Gives calls with a unary response a deadline when the caller set none.

    Streaming responses (watches, live streams) are left alone: they are meant to be long-lived.
    """

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        if details.timeout is not None:
            return details
        return grpc.aio.ClientCallDetails(
            details.method, self._seconds, details.metadata, details.credentials, details.wait_for_ready
        )

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)

    async def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


def open_channel(
    target: str,
    *,
    deadline_seconds: float = 10.0,
    max_message_bytes: int = 64 * 1024**2,
    telemetry: Telemetry | None = None,
    retry_deadline_exceeded: bool = False,
    extra_interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
    tls: TlsConfig | None = None,
    max_attempts: int = 4,
) -> grpc.aio.Channel:
    """A channel to ``target`` ("host:port", "dns:///name:port", "ipv4:a:1,b:2").

    Plaintext unless ``tls`` is given (pass ``config.server.tls``): then mutual TLS, the server's
    name checked against the CA-signed certificate.
    """
    interceptors: list[Any] = [DefaultDeadline(deadline_seconds), *extra_interceptors]
    if telemetry is not None and telemetry.tracing:
        from opentelemetry.instrumentation.grpc import aio_client_interceptors

        tracing = aio_client_interceptors(tracer_provider=telemetry.tracer_provider)  # type: ignore[no-untyped-call]
        interceptors = [*tracing, *interceptors]
    options = channel_options(
        max_message_bytes, retry_deadline_exceeded=retry_deadline_exceeded, max_attempts=max_attempts
    )
    if tls is not None:
        return grpc.aio.secure_channel(
            target, tls.channel_credentials(), options=options, interceptors=interceptors
        )
    return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
