"""grpc.health.v1 checks of the suite's processes, shared by ``mediasuite up`` and ``mediactl health``."""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.runtime.tls import TlsConfig

__all__ = ["HealthResult", "check_health"]


@dataclass(frozen=True)
class HealthResult:
    """What one health check found."""

    target: str
    service: str
    status: str
    latency_ms: float

    @property
    def serving(self) -> bool:
        """True when the status is SERVING."""
        return self.status == "SERVING"


def _short(error: grpc.aio.AioRpcError) -> str:
    details = error.details() or ""
    for known in ("Connection refused", "Deadline Exceeded", "Name resolution failure", "Socket closed"):
        if known.lower() in details.lower():
            return f"{error.code().name} ({known.lower()})"
    return f"{error.code().name} ({details[:60]})" if details else error.code().name


async def check_health(
    target: str,
    services: tuple[str, ...] = ("",),
    deadline_s: float = 2.0,
    *,
    tls: TlsConfig | None = None,
) -> list[HealthResult]:
    """Check the server ("") and each named service at ``target``; errors become the status text.

    When the server itself cannot be reached, its services get the same status without more calls.
    With ``tls`` the check speaks mutual TLS (a main port refuses plaintext when mTLS is on).
    """
    results: list[HealthResult] = []
    channel = (
        grpc.aio.secure_channel(target, tls.channel_credentials())
        if tls is not None
        else grpc.aio.insecure_channel(target)
    )
    async with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in services:
            if (
                results
                and not results[0].serving
                and results[0].status.startswith(("UNAVAILABLE", "DEADLINE"))
            ):
                results.append(HealthResult(target, service, results[0].status, 0.0))
                continue
            started = time.perf_counter()
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=deadline_s)
                status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.aio.AioRpcError as error:
                status = _short(error)
            results.append(HealthResult(target, service, status, (time.perf_counter() - started) * 1000))
    return results
