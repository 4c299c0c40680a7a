"""The real health probes: grpc.health.v1 of a suite process, PING of Redis.

A gRPC probe keeps one channel open (a check is then one small call, not a new connection) and
reconnects quickly after its peer restarts (reconnect backoff capped at 1 s), so a restored
process is seen at the next check. It speaks plaintext, or mutual TLS when given the suite's
certificates (a main port with GRPC_TLS_* on refuses plaintext; see config.py for which is used).
"""

from __future__ import annotations

import grpc
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from redis.exceptions import RedisError

from services.runtime.redis_client import redis_client
from services.runtime.tls import TlsConfig

__all__ = ["GrpcHealthProbe", "RedisProbe"]

_KNOWN = ("connection refused", "deadline exceeded", "name resolution", "socket closed", "failed to connect")


def _describe(error: grpc.aio.AioRpcError) -> str:
    details = (error.details() or "").lower()
    for known in _KNOWN:
        if known in details:
            return f"{error.code().name}: {known}"
    return f"{error.code().name}: {details[:80]}" if details else error.code().name


class GrpcHealthProbe:
    """grpc.health.v1 Check of a process's server status (service ""), over mTLS when ``tls`` is given.

    The certificates are read here, at construction (the monitor's start), so a missing file stops
    the monitor with a clear message instead of making every check fail.
    """

    def __init__(self, name: str, target: str, tls: TlsConfig | None = None) -> None:
        self.name = name
        self.target = target
        self._credentials = tls.channel_credentials() if tls is not None else None
        self._channel: grpc.aio.Channel | None = None

    def _stub(self) -> health_pb2_grpc.HealthStub:
        if self._channel is None:
            options = [
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.min_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 1000),
                ("grpc.enable_retries", 0),
            ]
            if self._credentials is not None:
                self._channel = grpc.aio.secure_channel(self.target, self._credentials, options=options)
            else:
                self._channel = grpc.aio.insecure_channel(self.target, options=options)
        return health_pb2_grpc.HealthStub(self._channel)

    async def check(self, deadline: float) -> tuple[bool, str]:
        """(SERVING?, the status name or the error)."""
        try:
            reply = await self._stub().Check(health_pb2.HealthCheckRequest(service=""), timeout=deadline)
        except grpc.aio.AioRpcError as error:
            return False, _describe(error)
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        return reply.status == health_pb2.HealthCheckResponse.SERVING, status

    async def close(self) -> None:
        """Close the channel."""
        if self._channel is not None:
            await self._channel.close(None)
            self._channel = None


class RedisProbe:
    """PING of the Redis at a URL."""

    name = "redis"

    def __init__(self, url: str) -> None:
        self.url = url
        self.target = url.rsplit("@", maxsplit=1)[-1]  # never show a password
        self._client: aioredis.Redis | None = None

    async def check(self, deadline: float) -> tuple[bool, str]:
        """(PONG?, "PONG" or the error)."""
        if self._client is None:
            self._client = redis_client(self.url, socket_timeout=deadline, socket_connect_timeout=deadline)
        try:
            await self._client.ping()
        except (RedisError, OSError) as error:
            return False, f"{type(error).__name__}: {str(error)[:80]}"
        return True, "PONG"

    async def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
