"""Convert, Optimize, AnalyzeQuality, Enhance, Crop, Watermark and GetCapabilities through a real server."""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
from PIL import Image, ImageFilter

from mediasuite.common.v1 import media_pb2
from mediasuite.processing.v1 import processing_service_pb2 as pb
from tests.service.processing.conftest import Factory
from tests.support import media as M


def _ref(inline: bytes) -> media_pb2.MediaRef:
    return media_pb2.MediaRef(inline=inline)


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def test_convert_changes_format_and_keeps_animation(processing: Factory) -> None:
    async with processing() as svc:
        png = await svc.stub.Convert(
            pb.ConvertRequest(
                media=_ref(M.save(M.photo(120, 90), "JPEG")),
                encode=pb.EncodeOptions(format=pb.IMAGE_FORMAT_PNG),
            )
        )
        webp = await svc.stub.Convert(
            pb.ConvertRequest(
                media=_ref(M.animated("GIF")), encode=pb.EncodeOptions(format=pb.IMAGE_FORMAT_WEBP)
            )
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await svc.stub.Convert(pb.ConvertRequest(media=_ref(M.animated("GIF"))))
    assert _open(png.output.inline).format == "PNG"
    assert png.output.media_type == "image/png"
    animated = _open(webp.output.inline)
    assert animated.format == "WEBP"
    assert getattr(animated, "n_frames", 1) == 6
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "encode.format" in (caught.value.details() or "")


async def test_optimize_is_smaller_and_similar(processing: Factory) -> None:
    heavy = M.save(M.photo(640, 480), "JPEG", quality=98)
    async with processing() as svc:
        reply = await svc.stub.Optimize(pb.OptimizeRequest(media=_ref(heavy)))
    assert not reply.returned_original
    assert reply.original_bytes == len(heavy)
    assert reply.optimized_bytes == len(reply.output.inline)
    assert reply.bytes_saved == reply.original_bytes - reply.optimized_bytes > len(heavy) // 4
    assert reply.ssim >= 0.98
    assert _open(reply.output.inline).size == (640, 480)


async def test_optimize_never_returns_something_larger(processing: Factory) -> None:
    tiny = M.save(Image.new("RGB", (8, 8), (10, 200, 30)), "PNG", optimize=True)
    async with processing() as svc:
        reply = await svc.stub.Optimize(pb.OptimizeRequest(media=_ref(tiny)))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await svc.stub.Optimize(pb.OptimizeRequest(media=_ref(tiny), min_ssim=1.5))
    assert reply.returned_original
    assert reply.output.inline == tiny
    assert reply.bytes_saved == 0
    assert reply.optimized_bytes == reply.original_bytes == len(tiny)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _issues(reply: pb.AnalyzeQualityResponse) -> set[str]:
    return {
        pb.QualityIssueKind.Name(issue.kind).removeprefix("QUALITY_ISSUE_KIND_")
        for issue in reply.report.issues
    }


async def test_quality_issues_are_found_on_bad_images_and_not_on_clean_ones(processing: Factory) -> None:
    clean = M.photo(1200, 900)
    dark = Image.fromarray((np.asarray(clean, dtype=np.float32) * 0.15).astype(np.uint8))
    bright = Image.fromarray(
        np.clip(np.asarray(clean, dtype=np.float32) * 0.3 + 200, 0, 255).astype(np.uint8)
    )
    noisy = M.photo(1200, 900, noise=25)
    flat = Image.fromarray((np.asarray(clean, dtype=np.float32) * 0.15 + 110).astype(np.uint8))
    cases = {
        "clean": (M.save(clean, "JPEG", quality=92), set()),
        "blurry": (M.save(clean.filter(ImageFilter.GaussianBlur(8)), "JPEG", quality=92), {"BLURRY"}),
        "dark": (M.save(dark, "JPEG", quality=92), {"UNDEREXPOSED"}),
        "bright": (M.save(bright, "JPEG", quality=92), {"OVEREXPOSED"}),
        "noisy": (M.save(noisy, "JPEG", quality=92), {"NOISY"}),
        "flat": (M.save(flat, "JPEG", quality=92), {"LOW_CONTRAST"}),
        "small": (M.save(clean.resize((320, 240)), "PNG"), {"LOW_RESOLUTION"}),
        "compressed": (M.save(clean, "JPEG", quality=15), {"HEAVY_COMPRESSION"}),
    }
    async with processing() as svc:
        found = {
            name: await svc.stub.AnalyzeQuality(pb.AnalyzeQualityRequest(media=_ref(data)))
            for name, (data, _) in cases.items()
        }
    for name, (_, expected) in cases.items():
        issues = _issues(found[name])
        assert expected <= issues, (name, issues, found[name].report)
        if name == "clean":
            assert issues == set(), found[name].report
    assert found["clean"].report.score == 100
    assert found["blurry"].report.score < 90
    assert found["clean"].report.estimated_jpeg_quality == 92
    assert found["compressed"].report.estimated_jpeg_quality == 15
    assert found["small"].report.estimated_jpeg_quality == 0
    blur = next(i for i in found["blurry"].report.issues if i.kind == pb.QUALITY_ISSUE_KIND_BLURRY)
    assert blur.measured < blur.threshold
    assert 0 < blur.severity <= 1
    assert "sharpness" in blur.message


async def test_enhance_applies_steps_in_order(processing: Factory) -> None:
    flat = Image.fromarray((np.asarray(M.photo(300, 200), dtype=np.float32) * 0.2 + 100).astype(np.uint8))
    async with processing() as svc:
        upright = await svc.stub.Enhance(
            pb.EnhanceRequest(
                media=_ref(M.save(flat, "PNG")), encode=pb.EncodeOptions(format=pb.IMAGE_FORMAT_PNG)
            )
        )
        rotated = await svc.stub.Enhance(pb.EnhanceRequest(media=_ref(M.oriented_jpeg(8))))
        steps = [pb.ENHANCE_STEP_SHARPEN, pb.ENHANCE_STEP_DENOISE, pb.ENHANCE_STEP_EQUALIZE]
        chosen = await svc.stub.Enhance(
            pb.EnhanceRequest(media=_ref(M.save(flat, "PNG")), steps=steps, strength=0.9)
        )
    assert list(upright.applied) == [pb.ENHANCE_STEP_AUTO_CONTRAST]
    low, high = M.extrema(_open(upright.output.inline).convert("L"))
    assert low < 10
    assert high > 245
    assert list(rotated.applied) == [pb.ENHANCE_STEP_AUTO_ORIENT, pb.ENHANCE_STEP_AUTO_CONTRAST]
    assert _open(rotated.output.inline).size == (600, 400)
    assert list(chosen.applied) == steps


async def test_crop_by_rectangle_and_by_aspect(processing: Factory) -> None:
    async with processing() as svc:
        data = M.oriented_jpeg(3)  # shows 600x400 with the marker top-left
        rect = await svc.stub.Crop(
            pb.CropRequest(
                media=_ref(data),
                rect=pb.Rect(x=0, y=0, width=100, height=80),
                encode=pb.EncodeOptions(format=pb.IMAGE_FORMAT_PNG),
            )
        )
        aspect = await svc.stub.Crop(
            pb.CropRequest(
                media=_ref(data), aspect=pb.AspectCrop(width_ratio=1, height_ratio=1, gravity=pb.GRAVITY_EAST)
            )
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await svc.stub.Crop(
                pb.CropRequest(media=_ref(data), rect=pb.Rect(x=550, y=0, width=100, height=10))
            )
    cut = _open(rect.output.inline).convert("RGB")
    assert cut.size == (100, 80)
    assert M.px(cut, (50, 40))[0] > 200
    assert (aspect.region.x, aspect.region.y, aspect.region.width, aspect.region.height) == (200, 0, 400, 400)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "rect" in (caught.value.details() or "")


async def test_watermark_text_placed_tiled_and_image_overlay(processing: Factory) -> None:
    base = M.save(Image.new("RGB", (400, 300), (0, 0, 0)), "PNG")
    png = pb.EncodeOptions(format=pb.IMAGE_FORMAT_PNG)
    logo = M.save(Image.new("RGBA", (50, 50), (255, 255, 0, 255)), "PNG")
    async with processing() as svc:
        placed = await svc.stub.Watermark(
            pb.WatermarkRequest(
                media=_ref(base),
                text=pb.TextMark(text="(c) mediasuite", size_ratio=0.1),
                opacity=1.0,
                encode=png,
            )
        )
        tiled = await svc.stub.Watermark(
            pb.WatermarkRequest(media=_ref(base), text=pb.TextMark(text="DRAFT"), tile=True, encode=png)
        )
        overlay = await svc.stub.Watermark(
            pb.WatermarkRequest(
                media=_ref(base), image=_ref(logo), position=pb.GRAVITY_NORTH_WEST, opacity=1.0, encode=png
            )
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await svc.stub.Watermark(
                pb.WatermarkRequest(media=_ref(base), text=pb.TextMark(text="x", color="red"))
            )
    marked = np.asarray(_open(placed.output.inline).convert("L"))
    assert marked[200:, 200:].max() > 200
    assert marked[:150, :200].max() == 0
    spread = np.asarray(_open(tiled.output.inline).convert("L"))
    assert all(
        spread[rows, cols].max() > 50
        for rows in (slice(0, 150), slice(150, 300))
        for cols in (slice(0, 200), slice(200, 400))
    )
    logo_out = _open(overlay.output.inline).convert("RGB")
    assert M.px(logo_out, (30, 30)) == (255, 255, 0)
    assert M.px(logo_out, (300, 200)) == (0, 0, 0)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "text.color" in (caught.value.details() or "")


async def test_capabilities_report_formats_presets_limits_and_workers(processing: Factory) -> None:
    async with processing(PROCESSING_PRESETS="thumb=100,hero=2000") as svc:
        caps = await svc.stub.GetCapabilities(pb.GetCapabilitiesRequest())
    assert pb.IMAGE_FORMAT_JPEG in caps.readable_formats
    assert pb.IMAGE_FORMAT_GIF in caps.readable_formats
    assert pb.IMAGE_FORMAT_GIF in caps.writable_formats
    assert pb.IMAGE_FORMAT_WEBP in caps.writable_formats
    assert [(p.name, p.long_edge) for p in caps.presets] == [("thumb", 100), ("hero", 2000)]
    limits = {limit.name: (limit.value, limit.env) for limit in caps.limits}
    assert limits["max_pixels"] == (100_000_000, "PROCESSING_MAX_PIXELS")
    assert caps.workers == 2
    assert caps.video_supported
    assert any(engine.startswith("pillow") for engine in caps.engines)
    assert any(engine.startswith("pyav") for engine in caps.engines)
