"""Calls to the processing service: one channel balanced round-robin over every replica the target
names ("ipv4:a:1,b:2", "dns:///processing:50052"), a deadline per attempt, and retries of
UNAVAILABLE, DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED with exponential backoff and full jitter
(never of INVALID_ARGUMENT or any other code). A replica that dies fails its calls UNAVAILABLE;
round_robin stops picking it, so the retries land on the others."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf import json_format

from mediasuite.common.v1 import media_pb2
from mediasuite.processing.v1 import processing_service_pb2 as pb
from mediasuite.processing.v1 import processing_service_pb2_grpc
from services.batch.changes import Media
from services.batch.config import Execution
from services.batch.work import RETRYABLE, ItemFailure
from services.runtime.clients import open_channel
from services.runtime.telemetry import Telemetry
from services.runtime.tls import TlsConfig

__all__ = ["ProcessingClient", "media_of_image", "media_of_video"]

T = TypeVar("T")


def _failure(error: grpc.aio.AioRpcError, attempts: int) -> ItemFailure:
    code = error.code()
    return ItemFailure(code.value[0], code.name, error.details() or code.name, attempts=attempts)


def media_of_image(info: pb.MediaInfo) -> Media:
    """Catalog metadata from a probe."""
    exif = (
        json_format.MessageToDict(info.exif, preserving_proto_field_name=True)
        if info.HasField("exif")
        else {}
    )
    taken = info.exif.taken_at.ToNanoseconds() if info.exif.HasField("taken_at") else 0
    return Media(
        size_bytes=info.size_bytes,
        mtime_ns=info.modified_at.ToNanoseconds(),
        content_hash=info.content_hash,
        format=info.format,
        kind="image",
        width=info.display_width or info.width,
        height=info.display_height or info.height,
        exif=exif,
        taken_at_ns=taken,
    )


def media_of_video(info: pb.VideoInfo, path: str, mtime_ns: int) -> Media:
    """Catalog metadata from a video probe."""
    video = next((s for s in info.streams if s.kind == pb.STREAM_KIND_VIDEO), None)
    extension = path.rsplit(".", 1)[-1].lower() if "." in path else info.container.split(",")[0]
    return Media(
        size_bytes=info.size_bytes,
        mtime_ns=mtime_ns,
        content_hash=info.content_hash,
        format=extension,
        kind="video",
        width=video.width if video else 0,
        height=video.height if video else 0,
        duration_s=info.duration.ToNanoseconds() / 1e9,
    )


class ProcessingClient:
    """The processing service, with the batch's retry policy."""

    def __init__(
        self,
        address: str,
        execution: Execution,
        *,
        telemetry: Telemetry | None = None,
        tls: TlsConfig | None = None,
        max_message_bytes: int = 64 * 1024**2,
    ) -> None:
        self.address = address
        self.execution = execution
        # Retries are ours (counted per item, with jitter): the channel makes one attempt per call.
        self.channel = open_channel(
            address,
            deadline_seconds=execution.item_deadline_seconds,
            telemetry=telemetry,
            tls=tls,
            max_message_bytes=max_message_bytes,
            max_attempts=1,
        )
        self.stub = processing_service_pb2_grpc.ProcessingServiceStub(self.channel)
        self._presets: dict[str, int] | None = None

    async def close(self) -> None:
        """Close the channel."""
        await self.channel.close(None)

    async def call(self, attempt: Callable[[float], Awaitable[T]], deadline_s: float) -> tuple[T, int]:
        """Run ``attempt(timeout)`` until it succeeds, fails for good, or attempts run out; the result
        and the attempts used. ItemFailure carries the final status."""
        attempts = 0
        while True:
            attempts += 1
            try:
                return await attempt(deadline_s), attempts
            except grpc.aio.AioRpcError as error:
                if error.code().name not in RETRYABLE or attempts >= self.execution.attempts:
                    raise _failure(error, attempts) from None
                ceiling = min(
                    self.execution.backoff_max_seconds, self.execution.backoff_seconds * 2 ** (attempts - 1)
                )
                await asyncio.sleep(random.uniform(0, ceiling))  # noqa: S311 - jitter, not crypto

    async def probe_images(
        self, paths: Sequence[str], deadline_s: float
    ) -> tuple[list[Media | ItemFailure], int]:
        """Probe (with content hash) many images in one call; each item succeeds or fails alone."""
        request = pb.ProbeManyRequest(media=[media_pb2.MediaRef(path=p) for p in paths], content_hash=True)
        # The call's deadline grows with the items (processing works on them in parallel, a few at a time).
        timeout = deadline_s * max(1, (len(paths) + 7) // 8)
        reply, attempts = await self.call(lambda t: self.stub.ProbeMany(request, timeout=t), timeout)
        results: list[Media | ItemFailure] = []
        for result in reply.results:
            if result.HasField("info"):
                results.append(media_of_image(result.info))
            else:
                error = result.error
                results.append(ItemFailure(error.code, error.code_name, error.message, error.field, attempts))
        return results, attempts

    async def probe_video(self, path: str, deadline_s: float) -> tuple[Media, int]:
        """Probe (with content hash) one video (its mtime is left 0: the caller knows it)."""
        request = pb.ProbeVideoRequest(media=media_pb2.MediaRef(path=path), content_hash=True)
        reply, attempts = await self.call(lambda t: self.stub.ProbeVideo(request, timeout=t), deadline_s)
        return media_of_video(reply.info, path, 0), attempts

    async def presets(self, deadline_s: float) -> dict[str, int]:
        """Thumbnail presets the processing service knows (name -> long edge), asked once with the
        batch's retries and ``deadline_s`` per attempt (the item deadline of the batch that needs them)."""
        if self._presets is None:
            reply, _ = await self.call(
                lambda t: self.stub.GetCapabilities(pb.GetCapabilitiesRequest(), timeout=t), deadline_s
            )
            self._presets = {p.name: p.long_edge for p in reply.presets}
        return self._presets

    async def invoke(self, method: str, request: Any, deadline_s: float) -> tuple[Any, int]:
        """Call a unary processing RPC by name, with retries."""
        rpc = getattr(self.stub, method)
        return await self.call(lambda t: rpc(request, timeout=t), deadline_s)
