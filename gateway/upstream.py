"""One shared gRPC channel per upstream process, and a cached callable per RPC.

Channels come from the runtime (``open_channel``: retry policy, default deadline for unary
calls, tracing interceptors when tracing is on). They are opened on first use, inside the
serving event loop, and closed when the gateway stops.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc

from gateway.codec import message_class
from gateway.routes import Route
from services.runtime.clients import open_channel
from services.runtime.telemetry import Telemetry
from services.runtime.tls import TlsConfig

__all__ = ["Upstreams"]


class Upstreams:
    """The gateway's clients: ``call(route)`` gives the multi-callable of the route's RPC."""

    def __init__(
        self,
        addresses: Mapping[str, str],
        *,
        telemetry: Telemetry | None = None,
        deadline_seconds: float = 10.0,
        max_message_bytes: int = 64 * 1024**2,
        tls: TlsConfig | None = None,
    ) -> None:
        self._addresses = dict(addresses)
        self._tls = tls
        self._telemetry = telemetry
        self._deadline = deadline_seconds
        self._max_message_bytes = max_message_bytes
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._callables: dict[str, Any] = {}

    def channel(self, upstream: str) -> grpc.aio.Channel:
        """The channel to an upstream process, opened on first use."""
        channel = self._channels.get(upstream)
        if channel is None:
            try:
                address = self._addresses[upstream]
            except KeyError:
                raise KeyError(f"no address configured for upstream {upstream!r}") from None
            channel = open_channel(
                address,
                deadline_seconds=self._deadline,
                max_message_bytes=self._max_message_bytes,
                telemetry=self._telemetry,
                tls=self._tls,
            )
            self._channels[upstream] = channel
        return channel

    def call(self, route: Route) -> Any:
        """The unary-unary or unary-stream multi-callable of the route's RPC (cached)."""
        path = route.grpc_path
        found = self._callables.get(path)
        if found is None:
            channel = self.channel(route.upstream)
            request_class = message_class(route.method.input_type)
            response_class = message_class(route.method.output_type)
            factory = channel.unary_stream if route.server_streaming else channel.unary_unary
            found = factory(
                path,
                request_serializer=request_class.SerializeToString,
                response_deserializer=response_class.FromString,
            )
            self._callables[path] = found
        return found

    async def close(self) -> None:
        """Close every channel (calls in flight are cancelled)."""
        channels, self._channels = self._channels, {}
        self._callables.clear()
        for channel in channels.values():
            await channel.close(None)
