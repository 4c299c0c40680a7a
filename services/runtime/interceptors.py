"""The suite's server interceptor: domain errors to status codes, in-flight tracking, RPC metrics.

One interceptor does the three jobs so a call pays for one wrapper, not three. The wrapped
handler of each method is built once and reused (it depends only on the method name).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry import metrics

from services.runtime.errors import MediasuiteError

__all__ = ["InflightTracker", "ServerInterceptor", "status_for"]

log = logging.getLogger("mediasuite.rpc")

_DOMAIN = "mediasuite"
_INTERNAL_HINT = "the service logged the details under this id; report it if the problem persists"


class InflightTracker:
    """Counts calls with a unary response in flight, so shutdown can wait for exactly those.

    Server-streaming calls (watches, live streams) are not counted: they have no natural end,
    and their clients re-attach after a restart.
    """

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def count(self) -> int:
        """Calls in flight now."""
        return self._count

    def enter(self) -> None:
        """A call started."""
        self._count += 1
        self._idle.clear()

    def leave(self) -> None:
        """A call ended."""
        self._count -= 1
        if self._count == 0:
            self._idle.set()

    async def wait_idle(self, within: float) -> bool:
        """Wait until no counted call is in flight; False when ``within`` seconds passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), within)
        except TimeoutError:
            return False
        return True


def status_for(error: MediasuiteError) -> grpc.Status:
    """The gRPC status (code, message, google.rpc details in trailing metadata) of a domain error."""
    status = status_pb2.Status(code=error.code.value, message=error.message)
    if error.violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in error.violations
            ]
        )
        detail = any_pb2.Any()
        detail.Pack(bad_request)
        status.details.append(detail)
    if error.reason or error.metadata:
        info = error_details_pb2.ErrorInfo(
            reason=error.reason or error.code.name, domain=_DOMAIN, metadata=error.metadata
        )
        detail = any_pb2.Any()
        detail.Pack(info)
        status.details.append(detail)
    return rpc_status.to_status(status)


Behavior = Callable[..., Any]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"

# (request streaming, response streaming) -> handler attribute holding the behavior, and its factory
_FACTORIES: dict[tuple[bool, bool], tuple[str, Callable[..., Any]]] = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


class ServerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Maps exceptions to statuses, counts in-flight calls, and records rpc.server.duration.

    - :class:`MediasuiteError`: its code, message and google.rpc details (BadRequest, ErrorInfo);
    - ``NotImplementedError`` (the generated base servicer): UNIMPLEMENTED, naming the method;
    - ``TimeoutError``: DEADLINE_EXCEEDED;
    - anything else: INTERNAL with an error id and no traceback; the traceback is logged.
    """

    def __init__(self, service: str, tracker: InflightTracker, meter: metrics.Meter | None = None) -> None:
        self._service = service
        self._tracker = tracker
        self._handlers: dict[str, Handler] = {}
        self._duration: metrics.Histogram | None = None
        self._active: metrics.UpDownCounter | None = None
        if meter is not None:
            self._duration = meter.create_histogram(
                "rpc.server.duration", unit="ms", description="Duration of inbound RPCs, by method and status"
            )
            self._active = meter.create_up_down_counter(
                "rpc.server.active_requests", unit="{request}", description="Inbound RPCs in flight"
            )

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        method: str = handler_call_details.method
        try:
            return self._handlers[method]
        except KeyError:
            pass
        handler = await continuation(handler_call_details)
        if handler is None:  # no such method: grpc answers UNIMPLEMENTED
            return handler
        wrapped = self._wrap(handler, method)
        self._handlers[method] = wrapped
        return wrapped

    def _wrap(self, handler: Handler, method: str) -> Handler:
        service_name, _, method_name = method.lstrip("/").rpartition("/")
        attributes = {"rpc.system": "grpc", "rpc.service": service_name, "rpc.method": method_name}
        attribute, factory = _FACTORIES[(handler.request_streaming, handler.response_streaming)]
        wrap = self._wrap_stream if handler.response_streaming else self._wrap_unary
        wrapped: Handler = factory(
            wrap(getattr(handler, attribute), method, attributes),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        return wrapped

    def _wrap_unary(self, behavior: Behavior, method: str, attributes: dict[str, str]) -> Behavior:
        tracker = self._tracker
        duration = self._duration

        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            tracker.enter()
            started = time.perf_counter()
            code = 0
            try:
                return await behavior(request, context)
            except grpc.aio.AbortError:
                code = _code_number(context.code())
                raise
            except Exception as error:
                status = self._status(error, method)
                code = status.code.value[0]
                await context.abort(status.code, status.details, status.trailing_metadata)
                raise  # pragma: no cover (abort raises)
            finally:
                tracker.leave()
                if duration is not None:
                    duration.record(
                        (time.perf_counter() - started) * 1000, {**attributes, "rpc.grpc.status_code": code}
                    )

        return unary

    def _wrap_stream(self, behavior: Behavior, method: str, attributes: dict[str, str]) -> Behavior:
        active = self._active

        async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            if active is not None:
                active.add(1, attributes)
            try:
                result = behavior(request, context)
                if hasattr(result, "__aiter__"):
                    async for item in result:
                        yield item
                else:  # a handler that writes with context.write() and returns
                    await result
            except grpc.aio.AbortError:
                raise
            except Exception as error:
                status = self._status(error, method)
                await context.abort(status.code, status.details, status.trailing_metadata)
                raise  # pragma: no cover (abort raises)
            finally:
                if active is not None:
                    active.add(-1, attributes)

        return stream

    def _status(self, error: Exception, method: str) -> grpc.Status:
        if isinstance(error, MediasuiteError):
            if error.code.name in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                log.warning("%s: %s %s", method, error.code.name, error.message)
            return status_for(error)
        if isinstance(error, NotImplementedError):
            detail = str(error)
            if detail in ("", "Method not implemented!"):  # the generated base servicer's text
                detail = "this capability is not built yet (see the README's status table)"
            return _Status(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented yet: {detail}")
        if isinstance(error, TimeoutError):
            return _Status(grpc.StatusCode.DEADLINE_EXCEEDED, f"{method} ran out of time: {error}")
        error_id = uuid.uuid4().hex[:12]
        log.error(
            "unhandled error in %s (error id %s)",
            method,
            error_id,
            exc_info=error,
            extra={"fields": {"error_id": error_id, "method": method}},
        )
        return _Status(
            grpc.StatusCode.INTERNAL, f"internal error in {method} (error id {error_id}); {_INTERNAL_HINT}"
        )


class _Status(grpc.Status):
    """A status without details."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata: tuple[tuple[str, str | bytes], ...] = ()


def _code_number(code: grpc.StatusCode | None) -> int:
    number: int = (code or grpc.StatusCode.UNKNOWN).value[0]
    return number
