"""Gateway test support: the gatewaytest proto, small test servicers on real gRPC servers, and an
in-process gateway (the real application under the real uvicorn) pointed at them.

The servicers stand in for services that other branches are building; the gateway, the runtime
around the servers and the wire in between are the real ones.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, timestamp_pb2
from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from PIL import Image

from gateway.app import HttpGateway, create_app
from gateway.codec import message_class
from gateway.config import GatewayConfig
from gateway.routes import RouteTable, Upstream, build_routes, suite_services
from gateway.server import HttpServer
from gateway.upstream import Upstreams
from mediasuite.batch.v1 import (
    batch_service_pb2,
    batch_service_pb2_grpc,
    catalog_service_pb2,
    catalog_service_pb2_grpc,
)
from mediasuite.cache.v1 import cache_service_pb2, cache_service_pb2_grpc
from mediasuite.common.v1 import media_pb2
from mediasuite.monitor.v1 import monitor_service_pb2, monitor_service_pb2_grpc
from mediasuite.processing.v1 import processing_service_pb2, processing_service_pb2_grpc
from services.runtime.config import Env
from services.runtime.errors import InvalidArgument, NotFound
from services.runtime.server import ServiceBinding
from services.runtime.telemetry import Telemetry

PROTO = Path(__file__).parent / "protos" / "gatewaytest.proto"
ECHO_SERVICE = "gatewaytest.v1.EchoService"


@cache
def gatewaytest_file() -> FileDescriptor:
    """The compiled gatewaytest.proto, added to the default descriptor pool (once per process)."""
    pool = descriptor_pool.Default()
    try:
        return pool.FindFileByName("gatewaytest.proto")
    except KeyError:
        pass
    import google.api.annotations_pb2
    import google.protobuf.duration_pb2
    import google.protobuf.wrappers_pb2
    import grpc_tools
    from grpc_tools import protoc

    googleapis = Path(google.api.annotations_pb2.__file__).parent.parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        code = protoc.main(
            [
                "protoc",
                f"-I{PROTO.parent}",
                f"-I{googleapis}",
                f"-I{Path(grpc_tools.__file__).parent / '_proto'}",
                f"--descriptor_set_out={out}",
                PROTO.name,
            ]
        )
        assert code == 0, "protoc failed on gatewaytest.proto"
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool.Add(files.file[0])
    return pool.FindFileByName("gatewaytest.proto")


def echo_service() -> ServiceDescriptor:
    """The EchoService descriptor."""
    return gatewaytest_file().services_by_name["EchoService"]


def echo_message(name: str) -> type[Message]:
    """A message class of the gatewaytest package by short name ("EchoRequest")."""
    return message_class(gatewaytest_file().message_types_by_name[name])


@dataclass
class EchoState:
    """What the echo servicer saw: cancelled streams and received metadata."""

    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    stream_started: asyncio.Event = field(default_factory=asyncio.Event)
    sent: list[int] = field(default_factory=list)


def echo_binding(state: EchoState) -> ServiceBinding:
    """EchoService on a real server: Echo returns the request and metadata, Count streams, Fail fails."""
    request_cls, response_cls = echo_message("EchoRequest"), echo_message("EchoResponse")
    count_request, count_response = echo_message("CountRequest"), echo_message("CountResponse")
    fail_request, fail_response = echo_message("FailRequest"), echo_message("FailResponse")

    async def echo(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        remaining = context.time_remaining()
        if remaining is not None:
            metadata["test-deadline-remaining"] = f"{remaining:.3f}"
        return response_cls(request=request, labels=dict(request.labels), metadata=metadata)

    async def count(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        state.stream_started.set()
        interval = request.interval.ToTimedelta().total_seconds()
        try:
            index = 0
            while request.n <= 0 or index < request.n:
                if request.fail_after and index == request.fail_after:
                    await context.abort(grpc.StatusCode(_code(request.fail_code)), f"failed after {index}")
                index += 1
                state.sent.append(index)
                yield count_response(index=index)
                if interval:
                    await asyncio.sleep(interval)
        except asyncio.CancelledError:
            state.cancelled.set()
            raise

    async def fail(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if request.code == 3:
            raise InvalidArgument("shelf.name must not be empty", field="shelf.name")
        if request.code == 5:
            raise NotFound("no shelf called 'x'")
        await context.abort(_code(request.code), f"failing with code {request.code} as asked")
        return fail_response()

    handler = grpc.method_handlers_generic_handler(
        ECHO_SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(
                echo,
                request_deserializer=request_cls.FromString,
                response_serializer=response_cls.SerializeToString,
            ),
            "Count": grpc.unary_stream_rpc_method_handler(
                count,
                request_deserializer=count_request.FromString,
                response_serializer=count_response.SerializeToString,
            ),
            "Fail": grpc.unary_unary_rpc_method_handler(
                fail,
                request_deserializer=fail_request.FromString,
                response_serializer=fail_response.SerializeToString,
            ),
        },
    )
    return ServiceBinding(ECHO_SERVICE, lambda server: server.add_generic_rpc_handlers((handler,)))


def _code(number: int) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code
    return grpc.StatusCode.UNKNOWN


# ---- test servicers on the suite's real generated services


class EchoCache(cache_service_pb2_grpc.CacheServiceServicer):
    """Get answers the key as value and returns the fingerprint; Set reports sizes; Delete knows one key."""

    async def Get(self, request: Any, context: Any) -> cache_service_pb2.GetResponse:
        if request.namespace == "missing":
            raise NotFound("unknown namespace 'missing'; known: media_metadata, thumbnail")
        return cache_service_pb2.GetResponse(
            found=True,
            value=request.key.encode(),
            info=cache_service_pb2.EntryInfo(content_type=request.namespace, fingerprint=request.fingerprint),
        )

    async def Set(self, request: Any, context: Any) -> cache_service_pb2.SetResponse:
        if request.ttl.seconds < 0:
            raise InvalidArgument("ttl must be positive", field="ttl")
        return cache_service_pb2.SetResponse(
            info=cache_service_pb2.EntryInfo(
                raw_bytes=len(request.value),
                content_type=request.content_type or f"{request.namespace}/{request.key}",
                fingerprint=request.fingerprint,
            )
        )

    async def Delete(self, request: Any, context: Any) -> cache_service_pb2.DeleteResponse:
        return cache_service_pb2.DeleteResponse(deleted=request.key == "present")


class LiveMonitor(monitor_service_pb2_grpc.MonitorServiceServicer):
    """Metrics that change every call, one alert, health of three components, live streams."""

    def __init__(self) -> None:
        self.calls = 0
        self.stream_cancelled = asyncio.Event()

    def _samples(self) -> list[monitor_service_pb2.MetricSample]:
        self.calls += 1
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        cpu = 10.0 + (self.calls * 7) % 80
        memory = 40.0 + (self.calls * 3) % 50
        return [
            monitor_service_pb2.MetricSample(name="system.cpu.percent", value=cpu, unit="%", time=now),
            monitor_service_pb2.MetricSample(name="system.memory.percent", value=memory, unit="%", time=now),
        ]

    async def GetCurrentMetrics(
        self, request: Any, context: Any
    ) -> monitor_service_pb2.GetCurrentMetricsResponse:
        samples = [s for s in self._samples() if s.name.startswith(request.prefix)]
        return monitor_service_pb2.GetCurrentMetricsResponse(
            samples=samples, sampled_at=samples[0].time if samples else None
        )

    async def StreamMetrics(
        self, request: Any, context: Any
    ) -> AsyncIterator[monitor_service_pb2.StreamMetricsResponse]:
        interval = request.interval.ToTimedelta().total_seconds() or 1.0
        try:
            while True:
                samples = self._samples()
                yield monitor_service_pb2.StreamMetricsResponse(samples=samples, time=samples[0].time)
                await asyncio.sleep(interval)
        except asyncio.CancelledError:
            self.stream_cancelled.set()
            raise

    async def GetActiveAlerts(
        self, request: Any, context: Any
    ) -> monitor_service_pb2.GetActiveAlertsResponse:
        return monitor_service_pb2.GetActiveAlertsResponse(
            alerts=[
                monitor_service_pb2.Alert(
                    id="cpu-high",
                    rule="cpu_high",
                    metric="system.cpu.percent",
                    level=monitor_service_pb2.ALERT_LEVEL_WARNING,
                    value=91.0,
                    threshold=85.0,
                    message="CPU above 85% for 1 minute",
                )
            ]
        )

    async def GetHealth(self, request: Any, context: Any) -> monitor_service_pb2.GetHealthResponse:
        return monitor_service_pb2.GetHealthResponse(
            score=82.0,
            status=monitor_service_pb2.HEALTH_STATUS_GOOD,
            components=[
                monitor_service_pb2.ComponentHealth(
                    name="cache", target="127.0.0.1:50051", serving=True, detail="SERVING"
                ),
                monitor_service_pb2.ComponentHealth(
                    name="processing",
                    target="127.0.0.1:50052",
                    serving=False,
                    detail="UNAVAILABLE: connection refused",
                ),
                monitor_service_pb2.ComponentHealth(
                    name="batch", target="127.0.0.1:50053", serving=True, detail="SERVING"
                ),
            ],
        )


def png_bytes(color: tuple[int, int, int], size: int = 48) -> bytes:
    """A real PNG made by Pillow."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, "PNG")
    return buffer.getvalue()


class SmallCatalog(catalog_service_pb2_grpc.CatalogServiceServicer):
    """Six items; QueryItems pages through them."""

    ITEMS: ClassVar[list[str]] = [f"photos/2024/img_{i}.jpg" for i in range(6)]

    async def QueryItems(self, request: Any, context: Any) -> catalog_service_pb2.QueryItemsResponse:
        size = request.page_size or 100
        items = [
            catalog_service_pb2.CatalogItem(id=f"item{i}", path=path, format="JPEG", width=48, height=48)
            for i, path in enumerate(self.ITEMS[:size])
        ]
        return catalog_service_pb2.QueryItemsResponse(items=items)


class ColourThumbnails(processing_service_pb2_grpc.ProcessingServiceServicer):
    """Thumbnail returns an inline PNG whose colour depends on the path."""

    async def Thumbnail(self, request: Any, context: Any) -> processing_service_pb2.ThumbnailResponse:
        shade = (sum(request.media.path.encode()) * 37) % 200
        data = png_bytes((shade, 120, 255 - shade))
        return processing_service_pb2.ThumbnailResponse(
            output=media_pb2.Output(
                inline=data, media_type="image/png", size_bytes=len(data), width=48, height=48
            )
        )


class StepBatches(batch_service_pb2_grpc.BatchServiceServicer):
    """StartBatch makes a 5-item batch that advances one item every ``step`` seconds while watched."""

    def __init__(self, step: float = 0.3) -> None:
        self.step = step
        self.batches: dict[str, batch_service_pb2.Batch] = {}

    async def StartBatch(self, request: Any, context: Any) -> batch_service_pb2.StartBatchResponse:
        batch_id = f"b{len(self.batches) + 1}"
        batch = batch_service_pb2.Batch(
            id=batch_id, spec=request.spec, state=batch_service_pb2.BATCH_STATE_RUNNING, total=5
        )
        self.batches[batch_id] = batch
        asyncio.get_running_loop().create_task(self._advance(batch))
        return batch_service_pb2.StartBatchResponse(batch=batch)

    async def _advance(self, batch: batch_service_pb2.Batch) -> None:
        while batch.done < batch.total:
            await asyncio.sleep(self.step)
            batch.done += 1
            batch.last_sequence += 1
        batch.state = batch_service_pb2.BATCH_STATE_SUCCEEDED

    async def ListBatches(self, request: Any, context: Any) -> batch_service_pb2.ListBatchesResponse:
        return batch_service_pb2.ListBatchesResponse(batches=list(self.batches.values()))

    async def GetBatch(self, request: Any, context: Any) -> batch_service_pb2.GetBatchResponse:
        if request.batch_id not in self.batches:
            raise NotFound(f"no batch {request.batch_id!r}")
        return batch_service_pb2.GetBatchResponse(batch=self.batches[request.batch_id])

    async def WatchBatch(
        self, request: Any, context: Any
    ) -> AsyncIterator[batch_service_pb2.WatchBatchResponse]:
        batch = self.batches.get(request.batch_id)
        if batch is None:
            raise NotFound(f"no batch {request.batch_id!r}")
        sequence = 0
        seen = -1
        while True:
            if batch.done != seen:
                seen = batch.done
                sequence += 1
                yield batch_service_pb2.WatchBatchResponse(
                    event=batch_service_pb2.BatchEvent(
                        batch_id=batch.id,
                        sequence=sequence,
                        progress=batch_service_pb2.BatchProgress(done=batch.done, total=batch.total),
                    )
                )
            if batch.done >= batch.total:
                sequence += 1
                yield batch_service_pb2.WatchBatchResponse(
                    event=batch_service_pb2.BatchEvent(
                        batch_id=batch.id,
                        sequence=sequence,
                        finished=batch_service_pb2.BatchFinished(batch=batch),
                    )
                )
                return
            await asyncio.sleep(0.05)


T = TypeVar("T")


def make(servicer_class: Callable[..., T], *args: Any) -> T:
    """A test servicer that implements only some RPCs (the others answer UNIMPLEMENTED)."""
    return servicer_class(*args)


def binding(name: str, add: Any, servicer: Any) -> ServiceBinding:
    """A ServiceBinding for a generated add_*Servicer_to_server function."""
    return ServiceBinding(name, partial(add, servicer))


# ---- the gateway itself, in this process


@dataclass
class RunningGateway:
    """A gateway serving on a free loopback port."""

    http: HttpServer
    built: HttpGateway

    @property
    def url(self) -> str:
        """Base URL ("http://127.0.0.1:PORT")."""
        return self.http.url

    @property
    def table(self) -> RouteTable:
        """Its route table."""
        return self.built.table


def gateway_config(upstreams: Mapping[str, str] | None = None, **env: str) -> GatewayConfig:
    """A gateway configuration from an environment, with upstream addresses by process name."""
    values = {"GATEWAY_LISTEN": "127.0.0.1:0", "GATEWAY_HTTP_LISTEN": "127.0.0.1:0", **env}
    for name, address in (upstreams or {}).items():
        values[f"{name.upper()}_ADDR"] = address
    return GatewayConfig.from_env(Env(values))


@asynccontextmanager
async def running_gateway(
    upstreams: Mapping[str, str],
    *,
    echo: bool = False,
    telemetry: Telemetry | None = None,
    **env: str,
) -> AsyncIterator[RunningGateway]:
    """The real gateway app under uvicorn on a free port; ``upstreams`` maps process names to addresses.

    With ``echo``, the gatewaytest EchoService (upstream "echo") is routed as well.
    """
    config = gateway_config({k: v for k, v in upstreams.items() if k != "echo"}, **env)
    services: list[Upstream] = list(suite_services())
    addresses = dict(config.upstreams)
    if echo:
        services.append(Upstream(echo_service(), "echo"))
        addresses["echo"] = upstreams["echo"]
    table = build_routes(services)
    clients = Upstreams(
        addresses,
        telemetry=telemetry,
        deadline_seconds=config.server.client_deadline_seconds,
        tls=config.server.tls,
    )
    built = create_app(config, telemetry=telemetry, table=table, upstreams=clients)
    http = HttpServer(built.asgi, config.http_listen, grace_seconds=1)
    await http.start()
    try:
        yield RunningGateway(http, built)
    finally:
        await http.stop()
        await clients.close()
