"""Hostile and broken input: every one gets its error, and the service keeps serving the next call.

Also the pool's guarantees: a time limit that stops a runaway operation, a dead worker replaced,
a bounded queue (RESOURCE_EXHAUSTED when full), an address-space cap per worker.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2

from mediasuite.common.v1 import media_pb2
from mediasuite.processing.v1 import processing_service_pb2 as pb
from tests.service.processing.conftest import Factory, Running
from tests.support import media as M
from tests.support.grpc_errors import detail

GOOD = M.save(M.photo(200, 150), "JPEG")


def _thumb(path: str = "", inline: bytes | None = None, preset: str = "tiny") -> pb.ThumbnailRequest:
    ref = media_pb2.MediaRef(inline=inline) if inline is not None else media_pb2.MediaRef(path=path)
    return pb.ThumbnailRequest(media=ref, preset=preset)


async def _fails(svc: Running, request: pb.ThumbnailRequest, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    """The call fails with ``code``, and a good call right after it succeeds."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await svc.stub.Thumbnail(request)
    assert caught.value.code() == code, caught.value.details()
    ok = await svc.stub.Thumbnail(_thumb(inline=GOOD))
    assert ok.output.width == 64
    return caught.value


def _limit(error: grpc.aio.AioRpcError) -> dict[str, str]:
    info = detail(error, error_details_pb2.ErrorInfo)
    assert info is not None, error.details()
    return dict(info.metadata)


async def test_decompression_bombs_are_refused_from_the_header(processing: Factory) -> None:
    async with processing() as svc:
        for bomb in (M.png_bomb(), M.jpeg_bomb()):
            error = await _fails(svc, _thumb(inline=bomb), grpc.StatusCode.RESOURCE_EXHAUSTED)
            assert _limit(error) == {
                "limit": "max_pixels",
                "maximum": "100000000",
                "actual": "2500000000" if bomb[:4] == b"\x89PNG" else "1600000000",
                "env": "PROCESSING_MAX_PIXELS",
            }
            assert "PROCESSING_MAX_PIXELS" in (error.details() or "")


async def test_broken_files_say_what_is_wrong(processing: Factory) -> None:
    photo = M.save(M.photo(300, 200), "JPEG")
    cases = {
        "truncated.jpg": (photo[: len(photo) // 2], "truncated"),
        "corrupt.jpg": (photo[:200] + os.urandom(2000), "corrupt"),
        "page.jpg": (b"<!DOCTYPE html><html><body>hi</body></html>", "HTML"),
        "doc.jpg": (b"%PDF-1.7\n" + b"0" * 100, "PDF"),
        "clip.jpg": (M.h264_video(frames=5), "video"),
        "empty.jpg": (b"", "empty"),
        "garbage.png": (b"\x89PNG\r\n\x1a\n" + os.urandom(64), "PNG"),
    }
    async with processing() as svc:
        for name, (data, words) in cases.items():
            svc.put(name, data)
            error = await _fails(svc, _thumb(name), grpc.StatusCode.INVALID_ARGUMENT)
            assert words in (error.details() or ""), (name, error.details())
            bad = detail(error, error_details_pb2.BadRequest)
            assert bad is not None
            assert bad.field_violations[0].field == "media.path", name
        error = await _fails(svc, _thumb(inline=b""), grpc.StatusCode.INVALID_ARGUMENT)
        assert "empty" in (error.details() or "")


async def test_a_mislabelled_image_is_read_by_its_bytes(processing: Factory) -> None:
    async with processing() as svc:
        path = svc.put("really-a-png.jpg", M.save(M.photo(120, 90), "PNG"))
        reply = await svc.stub.Probe(
            pb.ProbeRequest(media=media_pb2.MediaRef(path=path, media_type_hint="image/jpeg"))
        )
    assert reply.info.format == "PNG"


async def test_paths_outside_the_media_root_are_refused(processing: Factory, tmp_path: Path) -> None:
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(GOOD)
    async with processing() as svc:
        (svc.media / "escape.jpg").symlink_to(secret)
        (svc.media / "dir").mkdir()
        (svc.media / "dir" / "inside.jpg").write_bytes(GOOD)
        (svc.media / "link-inside.jpg").symlink_to(svc.media / "dir" / "inside.jpg")
        for path in ("../secret.jpg", "/etc/passwd", "dir/../../secret.jpg", "escape.jpg", "C:/windows"):
            error = await _fails(svc, _thumb(path), grpc.StatusCode.PERMISSION_DENIED)
            assert "media root" in (error.details() or ""), path
        await _fails(svc, _thumb("nope.jpg"), grpc.StatusCode.NOT_FOUND)
        await _fails(svc, _thumb("dir"), grpc.StatusCode.INVALID_ARGUMENT)
        ok = await svc.stub.Thumbnail(_thumb("link-inside.jpg"))  # a symlink that stays inside is fine
        assert ok.output.width == 64


async def test_byte_frame_and_output_limits(processing: Factory) -> None:
    async with processing(
        PROCESSING_MAX_FILE_BYTES="64KiB", PROCESSING_MAX_INLINE_BYTES="16KiB", PROCESSING_MAX_FRAMES="3"
    ) as svc:
        big = svc.put("big.jpg", M.save(M.photo(400, 300, noise=20), "JPEG", quality=95))
        error = await _fails(svc, _thumb(big), grpc.StatusCode.RESOURCE_EXHAUSTED)
        assert _limit(error)["limit"] == "max_file_bytes"
        assert "PROCESSING_MAX_FILE_BYTES" in (error.details() or "")
        error = await _fails(svc, _thumb(inline=b"x" * 20_000), grpc.StatusCode.RESOURCE_EXHAUSTED)
        assert "PROCESSING_MAX_INLINE_BYTES" in (error.details() or "")
        assert _limit(error)["limit"] == "max_inline_bytes"
        error = await _fails(
            svc,
            pb.ThumbnailRequest(media=media_pb2.MediaRef(inline=GOOD), size=pb.Size(width=100_000)),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        )
        assert _limit(error)["limit"] == "max_output_dimension"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await svc.stub.Probe(
                pb.ProbeRequest(media=media_pb2.MediaRef(inline=M.animated("GIF", frames=6)))
            )
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert _limit(caught.value)["limit"] == "max_frames"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await svc.stub.ValidateVideo(
                pb.ValidateVideoRequest(media=media_pb2.MediaRef(inline=M.h264_video(frames=5)))
            )
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert _limit(caught.value)["limit"] == "max_frames"


async def test_an_operation_over_its_time_limit_is_stopped_and_the_worker_replaced(
    processing: Factory,
) -> None:
    slow = M.flat_png(10_000)
    async with processing(PROCESSING_OPERATION_TIMEOUT="250ms", PROCESSING_WORKERS="1") as svc:
        before = svc.pool.stats().pids
        error = await _fails(svc, _thumb(inline=slow), grpc.StatusCode.DEADLINE_EXCEEDED)
        assert "time limit" in (error.details() or "")
        assert "PROCESSING_OPERATION_TIMEOUT" in (error.details() or "")
        stats = svc.pool.stats()
    assert stats.restarts == 1
    assert stats.pids != before


async def test_a_worker_that_dies_is_replaced_and_its_call_fails_cleanly(processing: Factory) -> None:
    slow = M.flat_png(10_000)
    async with processing(PROCESSING_WORKERS="1") as svc:
        (pid,) = svc.pool.stats().pids
        call = asyncio.ensure_future(svc.stub.Thumbnail(_thumb(inline=slow)))
        for _ in range(200):
            if svc.pool.stats().busy:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.ABORTED
        assert "signal 9" in (caught.value.details() or "")
        assert "replaced" in (caught.value.details() or "")
        ok = await svc.stub.Thumbnail(_thumb(inline=GOOD))
        assert ok.output.width == 64
        assert svc.pool.stats().pids != (pid,)


async def test_a_full_queue_refuses_with_resource_exhausted(processing: Factory) -> None:
    slow = M.flat_png(5000)
    async with processing(PROCESSING_WORKERS="1", PROCESSING_QUEUE_SIZE="1") as svc:
        calls = [svc.stub.Thumbnail(_thumb(inline=slow)) for _ in range(4)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        served = [r for r in results if isinstance(r, pb.ThumbnailResponse)]
        assert len(served) == 2
        assert len(refused) == 2
        for error in refused:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert _limit(error)["limit"] == "queue_size"
            assert "PROCESSING_QUEUE_SIZE" in (error.details() or "")
        assert svc.pool.stats().rejected == 2
        ok = await svc.stub.Thumbnail(_thumb(inline=GOOD))
        assert ok.output.width == 64


async def test_a_worker_memory_cap_turns_a_huge_decode_into_a_clean_error(processing: Factory) -> None:
    async with processing(PROCESSING_WORKER_MEMORY="450MiB", PROCESSING_WORKERS="1") as svc:
        error = await _fails(svc, _thumb(inline=M.flat_png(10_000)), grpc.StatusCode.RESOURCE_EXHAUSTED)
        assert _limit(error)["limit"] == "worker_memory_bytes"
        assert "PROCESSING_WORKER_MEMORY" in (error.details() or "")
