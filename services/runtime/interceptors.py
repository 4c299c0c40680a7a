"""The suite's server interceptor: domain errors to status codes, in-flight tracking, RPC metrics,
and (when tracing is on) a server span per call.

One interceptor does the jobs so a call pays for one wrapper, not four. The wrapped handler of
each method is built once and reused (it depends only on the method name).

Tracing is done here rather than by opentelemetry-instrumentation-grpc's server interceptor,
which builds a new handler and a wrapped context for every call and cost about 40% of a minimal
call's server CPU in ``bench/bench_cache.py`` even for calls the sampler dropped. The spans are
the same: named after the full method, kind SERVER, rpc.* attributes, the W3C parent taken from
the call's metadata, status ERROR with rpc.grpc.status_code on failure. Health checks and
reflection are not traced.
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
from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.runtime.errors import MediasuiteError

__all__ = ["InflightTracker", "ServerInterceptor", "status_for"]

log = logging.getLogger("mediasuite.rpc")

_DOMAIN = "mediasuite"
_UNTRACED = ("/grpc.health.v1.Health/", "/grpc.reflection.")
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


class _InFlight:
    """Calls of one method in flight: a plain integer, read by the metric callback at export time."""

    __slots__ = ("attributes", "count")

    def __init__(self, attributes: dict[str, str]) -> None:
        self.attributes = attributes
        self.count = 0


class ServerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Maps exceptions to statuses, counts in-flight calls, and records rpc.server.duration.

    ``rpc.server.active_requests`` counts every inbound call in flight, unary and streaming, per
    method. A call pays one integer add and one subtract; the metric reads the integers at export
    time (an observable up-down counter), so the hot path makes no metrics SDK call for it.

    - :class:`MediasuiteError`: its code, message and google.rpc details (BadRequest, ErrorInfo);
    - ``NotImplementedError`` (the generated base servicer): UNIMPLEMENTED, naming the method;
    - ``TimeoutError``: DEADLINE_EXCEEDED;
    - Redis (or another connection) unreachable: UNAVAILABLE, which callers may retry;
    - anything else: INTERNAL with an error id and no traceback; the traceback is logged.
    """

    def __init__(
        self,
        service: str,
        tracker: InflightTracker,
        meter: metrics.Meter | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self._service = service
        self._tracker = tracker
        self._tracer = tracer
        self._handlers: dict[str, Handler] = {}
        self._duration: metrics.Histogram | None = None
        self._in_flight: dict[str, _InFlight] = {}  # per method, added when a method is first called
        if meter is not None:
            self._duration = meter.create_histogram(
                "rpc.server.duration", unit="ms", description="Duration of inbound RPCs, by method and status"
            )
            meter.create_observable_up_down_counter(
                "rpc.server.active_requests",
                [self._observe_in_flight],
                unit="{request}",
                description="Inbound RPCs in flight (unary and streaming), by method",
            )

    def _observe_in_flight(self, _options: metrics.CallbackOptions) -> list[metrics.Observation]:
        # Runs on the exporter's thread: iterate a snapshot, the event loop may add methods meanwhile.
        return [metrics.Observation(m.count, m.attributes) for m in tuple(self._in_flight.values())]

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
        # setdefault: two first calls of a method racing through _wrap share one count.
        in_flight = self._in_flight.setdefault(method, _InFlight(attributes))
        behavior = wrap(getattr(handler, attribute), method, in_flight)
        if self._tracer is not None and not method.startswith(_UNTRACED):
            # Outermost, so the span sees the status the errors were mapped to.
            behavior = _traced(behavior, self._tracer, method, attributes, handler.response_streaming)
        wrapped: Handler = factory(
            behavior,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        return wrapped

    def _wrap_unary(self, behavior: Behavior, method: str, in_flight: _InFlight) -> Behavior:
        tracker = self._tracker
        duration = self._duration
        attributes = in_flight.attributes

        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            tracker.enter()
            in_flight.count += 1
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
                in_flight.count -= 1
                if duration is not None:
                    duration.record(
                        (time.perf_counter() - started) * 1000, {**attributes, "rpc.grpc.status_code": code}
                    )

        return unary

    def _wrap_stream(self, behavior: Behavior, method: str, in_flight: _InFlight) -> Behavior:
        async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            in_flight.count += 1
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
                in_flight.count -= 1

        return stream

    def _status(self, error: Exception, method: str) -> grpc.Status:
        if isinstance(error, MediasuiteError):
            if error.code.name in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                log.warning("%s: %s %s", method, error.code.name, error.message)
            return status_for(error)
        if isinstance(error, NotImplementedError):
            detail = str(error)
            if detail in ("", "Method not implemented!"):  # the generated base servicer's text
                detail = "this server's version does not serve it (check client and server versions)"
            return _Status(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented: {detail}")
        if isinstance(error, TimeoutError):
            return _Status(grpc.StatusCode.DEADLINE_EXCEEDED, f"{method} ran out of time: {error}")
        if isinstance(error, RedisConnectionError | RedisTimeoutError | ConnectionError):
            # A dependency down is not a bug of ours: the caller may retry (UNAVAILABLE is retryable).
            log.warning("%s: UNAVAILABLE, a dependency is unreachable: %s", method, error)
            return _Status(
                grpc.StatusCode.UNAVAILABLE,
                f"{method}: a dependency of the service is unreachable ({error}); retry in a moment",
            )
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


def _parent(
    context: grpc.aio.ServicerContext[Any, Any], fields: frozenset[str]
) -> otel_context.Context | None:
    """The trace context the caller sent in the headers the propagator reads, if any."""
    carrier = {}
    for key, value in context.invocation_metadata() or ():
        if key in fields:
            carrier[key] = value if isinstance(value, str) else value.decode()
    return propagate.extract(carrier) if carrier else None


def _finish(
    span: trace.Span, context: grpc.aio.ServicerContext[Any, Any], error: BaseException | None
) -> None:
    """Record the outcome on a sampled span: status code, ERROR status, the peer."""
    if error is None or isinstance(error, grpc.aio.AbortError):
        code = context.code()
        number = _code_number(code) if code is not None else 0
    else:  # cancelled, or something the error mapping did not turn into a status
        number = (
            grpc.StatusCode.CANCELLED
            if isinstance(error, asyncio.CancelledError)
            else grpc.StatusCode.UNKNOWN
        ).value[0]
    span.set_attribute("rpc.grpc.status_code", number)
    if number != 0:
        span.set_status(trace.Status(trace.StatusCode.ERROR, context.details() or type(error).__name__))
    peer = context.peer() or ""
    if peer.startswith(("ipv4:", "ipv6:")):
        host, _, port = peer.split(",")[0].split(":", 1)[1].rpartition(":")
        span.set_attribute("net.peer.ip", host.strip("[]"))
        span.set_attribute("net.peer.port", port)


def _traced(
    behavior: Behavior, tracer: trace.Tracer, method: str, attributes: dict[str, str], streaming: bool
) -> Behavior:
    """``behavior`` run inside a SERVER span (child of the caller's context when it sent one)."""
    kind = trace.SpanKind.SERVER
    # The headers the configured propagators read (W3C traceparent/tracestate, baggage, b3 ...).
    fields = frozenset(propagate.get_global_textmap().fields)

    if not streaming:

        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            parent = _parent(context, fields)
            span = tracer.start_span(method, context=parent, kind=kind, attributes=attributes)
            token = otel_context.attach(trace.set_span_in_context(span, parent))
            error: BaseException | None = None
            try:
                return await behavior(request, context)
            except BaseException as caught:
                error = caught
                raise
            finally:
                otel_context.detach(token)
                if span.is_recording():
                    _finish(span, context, error)
                    span.end()

        return unary

    async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        parent = _parent(context, fields)
        span = tracer.start_span(method, context=parent, kind=kind, attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        error: BaseException | None = None
        try:
            result = behavior(request, context)
            if hasattr(result, "__aiter__"):
                async for item in result:
                    yield item
            else:
                await result
        except BaseException as caught:
            error = caught
            raise
        finally:
            otel_context.detach(token)
            if span.is_recording():
                _finish(span, context, error)
                span.end()

    return stream


class _Status(grpc.Status):
    """A status without details."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata: tuple[tuple[str, str | bytes], ...] = ()


def _code_number(code: grpc.StatusCode | None) -> int:
    number: int = (code or grpc.StatusCode.UNKNOWN).value[0]
    return number
