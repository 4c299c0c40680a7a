"""Video and animation through a real server: probe, thumbnails, validation, frames (PyAV-made files)."""

from __future__ import annotations

import io

import grpc
import pytest
from google.protobuf import duration_pb2
from PIL import Image

from mediasuite.common.v1 import media_pb2
from mediasuite.processing.v1 import processing_service_pb2 as pb
from tests.service.processing.conftest import Factory
from tests.support import media as M


def _ref(inline: bytes) -> media_pb2.MediaRef:
    return media_pb2.MediaRef(inline=inline)


def _seconds(value: duration_pb2.Duration) -> float:
    return value.ToNanoseconds() / 1e9


async def test_probe_video_reports_container_and_streams(processing: Factory) -> None:
    video = M.h264_video()
    async with processing() as svc:
        reply = await svc.stub.ProbeVideo(pb.ProbeVideoRequest(media=_ref(video), content_hash=True))
    info = reply.info
    assert "mp4" in info.container
    assert abs(_seconds(info.duration) - 2.0) < 0.05
    assert info.size_bytes == len(video)
    assert info.content_hash.startswith("sha256:")
    assert info.bit_rate > 0
    (stream,) = info.streams
    assert (stream.kind, stream.codec, stream.width, stream.height) == (
        pb.STREAM_KIND_VIDEO,
        "h264",
        320,
        240,
    )
    assert stream.fps == 25
    assert stream.frame_count == 50
    assert stream.pixel_format == "yuv420p"


async def test_video_thumbnail_skips_black_frames_or_takes_the_asked_time(processing: Factory) -> None:
    video = M.h264_video(black_frames=10)
    async with processing() as svc:
        chosen = await svc.stub.VideoThumbnail(
            pb.VideoThumbnailRequest(media=_ref(video), size=pb.Size(width=160))
        )
        asked = await svc.stub.VideoThumbnail(
            pb.VideoThumbnailRequest(media=_ref(video), timestamp=duration_pb2.Duration(seconds=1))
        )
        first = await svc.stub.VideoThumbnail(
            pb.VideoThumbnailRequest(media=_ref(video), timestamp=duration_pb2.Duration(seconds=0))
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await svc.stub.VideoThumbnail(
                pb.VideoThumbnailRequest(media=_ref(video), timestamp=duration_pb2.Duration(seconds=9))
            )
    assert _seconds(chosen.frame_timestamp) == pytest.approx(0.4)  # frame 10 at 25 fps: the first non-black
    assert Image.open(io.BytesIO(chosen.output.inline)).size == (160, 120)
    assert _seconds(asked.frame_timestamp) == pytest.approx(1.0)
    assert Image.open(io.BytesIO(asked.output.inline)).size == (320, 240)  # medium preset, no upscaling
    dark = Image.open(io.BytesIO(first.output.inline)).convert("L")
    assert M.extrema(dark)[1] < 30
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "past the end" in (caught.value.details() or "")


async def test_validate_video_finds_corrupted_packets_with_their_times(processing: Factory) -> None:
    async with processing() as svc:
        clean = await svc.stub.ValidateVideo(pb.ValidateVideoRequest(media=_ref(M.h264_video())))
        broken = await svc.stub.ValidateVideo(
            pb.ValidateVideoRequest(media=_ref(M.corrupt_h264()), max_errors=50)
        )
        capped = await svc.stub.ValidateVideo(
            pb.ValidateVideoRequest(media=_ref(M.corrupt_h264()), max_errors=1)
        )
    assert clean.valid
    assert clean.frames_decoded == 50
    assert not clean.errors
    assert _seconds(clean.decoded_duration) == pytest.approx(2.0)
    assert not broken.valid
    assert broken.frames_decoded < 50
    times = [_seconds(e.timestamp) for e in broken.errors]
    assert times == sorted(times)
    assert 0.5 < times[0] < 1.2
    assert all(e.stream_index == 0 and e.message for e in broken.errors)
    assert len(capped.errors) == 1


async def test_extract_frames_of_animations_and_video(processing: Factory) -> None:
    async with processing() as svc:
        gif = await svc.stub.ExtractFrames(
            pb.ExtractFramesRequest(media=_ref(M.animated("GIF")), max_frames=3)
        )
        webp = await svc.stub.ExtractFrames(
            pb.ExtractFramesRequest(media=_ref(M.animated("WEBP")), max_frames=10, size=pb.Size(width=40))
        )
        video = await svc.stub.ExtractFrames(
            pb.ExtractFramesRequest(media=_ref(M.h264_video()), max_frames=2)
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await svc.stub.ExtractFrames(
                pb.ExtractFramesRequest(media=_ref(M.animated("GIF")), max_frames=1000)
            )
    assert gif.total_frames == 6
    assert [f.index for f in gif.frames] == [0, 1, 2]
    assert [_seconds(f.timestamp) for f in gif.frames] == pytest.approx([0.0, 0.1, 0.2])
    frames = [Image.open(io.BytesIO(f.output.inline)).convert("RGB") for f in gif.frames]
    positions = [next(x for x in range(80) if M.px(f, (x, 30))[1] < 100) for f in frames]
    assert positions == sorted(positions)
    assert positions[0] < positions[2]
    assert webp.total_frames == 6
    assert len(webp.frames) == 6
    assert all(f.output.width == 40 and f.output.height == 30 for f in webp.frames)
    assert len(video.frames) == 2
    assert video.total_frames == 50
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
