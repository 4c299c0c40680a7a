"""Thumbnail through a real server: sizes, fits, orientation, colour, formats, metadata, delivery."""

from __future__ import annotations

import hashlib
import io

import grpc
import numpy as np
import pytest
from google.rpc import error_details_pb2
from PIL import Image, ImageDraw

from mediasuite.common.v1 import media_pb2
from mediasuite.processing.v1 import processing_service_pb2 as pb
from tests.service.processing.conftest import Factory
from tests.support import media as M
from tests.support.grpc_errors import detail


def _thumb(path: str = "", inline: bytes = b"", **fields: object) -> pb.ThumbnailRequest:
    ref = media_pb2.MediaRef(path=path) if path else media_pb2.MediaRef(inline=inline)
    return pb.ThumbnailRequest(media=ref, **fields)  # type: ignore[arg-type]


def _png() -> pb.EncodeOptions:
    return pb.EncodeOptions(format=pb.IMAGE_FORMAT_PNG)


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def test_preset_contain_gives_the_long_edge_and_a_jpeg(processing: Factory) -> None:
    async with processing() as svc:
        path = svc.put("a/photo.jpg", M.save(M.photo(800, 600), "JPEG", quality=90))
        reply = await svc.stub.Thumbnail(_thumb(path, preset="small"))
    out = reply.output
    image = _open(out.inline)
    assert (image.format, image.size) == ("JPEG", (160, 120))
    assert (out.width, out.height, out.media_type, out.size_bytes) == (
        160,
        120,
        "image/jpeg",
        len(out.inline),
    )
    assert len(out.content_key) == 64
    assert "pillow" in reply.operation.engine_version
    assert not reply.operation.cached


async def test_every_exif_orientation_puts_the_marker_top_left(processing: Factory) -> None:
    async with processing() as svc:
        for orientation in range(1, 9):
            path = svc.put(f"o{orientation}.jpg", M.oriented_jpeg(orientation))
            reply = await svc.stub.Thumbnail(_thumb(path, size=pb.Size(width=120), encode=_png()))
            image = _open(reply.output.inline).convert("RGB")
            assert image.size == (120, 80), orientation
            r, g, b = M.px(image, (5, 5))
            assert (r > 200, g < 60, b < 60) == (True, True, True), (orientation, (r, g, b))
            for corner in ((114, 5), (5, 74), (114, 74)):
                assert M.px(image, corner)[0] < 100, (orientation, corner)


async def test_cover_crops_to_the_box_by_gravity_and_by_content(processing: Factory) -> None:
    base = Image.new("RGB", (400, 200), (128, 128, 128))
    noise = np.random.default_rng(3).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    base.paste(Image.fromarray(noise), (200, 0))  # detail on the right half, flat on the left
    async with processing() as svc:
        path = svc.put("half.png", M.save(base, "PNG"))

        async def std(gravity: int) -> float:
            box = pb.Size(width=100, height=100)
            reply = await svc.stub.Thumbnail(
                _thumb(path, size=box, fit=pb.FIT_MODE_COVER, gravity=gravity, encode=_png())
            )
            image = _open(reply.output.inline)
            assert image.size == (100, 100)
            return float(np.asarray(image.convert("L"), dtype=np.float32).std())

        assert await std(pb.GRAVITY_WEST) < 5
        assert await std(pb.GRAVITY_EAST) > 20
        assert await std(pb.GRAVITY_ENTROPY) > 20
        assert await std(pb.GRAVITY_ATTENTION) > 20


async def test_attention_keeps_a_saturated_subject(processing: Factory) -> None:
    scene = Image.new("RGB", (600, 200), (90, 90, 90))
    ImageDraw.Draw(scene).ellipse((30, 40, 150, 160), fill=(230, 30, 30))  # subject at the far left
    async with processing() as svc:
        path = svc.put("subject.png", M.save(scene, "PNG"))
        reply = await svc.stub.Thumbnail(
            _thumb(
                path, size=pb.Size(width=200, height=200), fit=pb.FIT_MODE_COVER, gravity=pb.GRAVITY_ATTENTION
            )
        )
    image = _open(reply.output.inline).convert("RGB")
    pixels = np.asarray(image, dtype=np.int16)
    reds = int(((pixels[..., 0] > 180) & (pixels[..., 1] < 90)).sum())
    assert reds > 2000


async def test_fill_makes_exactly_the_box(processing: Factory) -> None:
    async with processing() as svc:
        path = svc.put("p.jpg", M.save(M.photo(400, 300), "JPEG"))
        reply = await svc.stub.Thumbnail(
            _thumb(path, size=pb.Size(width=90, height=200), fit=pb.FIT_MODE_FILL)
        )
    assert _open(reply.output.inline).size == (90, 200)


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        (pb.IMAGE_FORMAT_PNG, "PNG"),
        (pb.IMAGE_FORMAT_WEBP, "WEBP"),
        (pb.IMAGE_FORMAT_TIFF, "TIFF"),
        (pb.IMAGE_FORMAT_AVIF, "AVIF"),
    ],
)
async def test_output_formats(processing: Factory, fmt: pb.ImageFormat.ValueType, name: str) -> None:
    async with processing() as svc:
        caps = await svc.stub.GetCapabilities(pb.GetCapabilitiesRequest())
        if fmt not in caps.writable_formats:
            pytest.skip(f"{name} is not writable with this Pillow build")
        path = svc.put("p.jpg", M.save(M.photo(320, 240), "JPEG"))
        reply = await svc.stub.Thumbnail(_thumb(path, preset="tiny", encode=pb.EncodeOptions(format=fmt)))
    image = _open(reply.output.inline)
    assert (image.format, image.size) == (name, (64, 48))


async def test_progressive_jpeg_and_quality(processing: Factory) -> None:
    async with processing() as svc:
        path = svc.put("p.jpg", M.save(M.photo(640, 480), "JPEG"))
        low = await svc.stub.Thumbnail(_thumb(path, preset="medium", encode=pb.EncodeOptions(quality=30)))
        high = await svc.stub.Thumbnail(
            _thumb(path, preset="medium", encode=pb.EncodeOptions(quality=95, progressive=True))
        )
    assert len(low.output.inline) < len(high.output.inline)
    assert _open(high.output.inline).info.get("progressive") or _open(high.output.inline).info.get(
        "progression"
    )


async def test_metadata_is_stripped_by_default_and_kept_when_asked(processing: Factory) -> None:
    icc = M.rgb_swapped_profile()
    source = M.save(M.photo(400, 300), "JPEG", exif=M.exif_bytes(6, copyright="(c) Test"), icc_profile=icc)
    async with processing() as svc:
        path = svc.put("meta.jpg", source)
        stripped = _open((await svc.stub.Thumbnail(_thumb(path, preset="small"))).output.inline)
        keep = pb.EncodeOptions(metadata=pb.METADATA_POLICY_KEEP_COPYRIGHT)
        rights = _open((await svc.stub.Thumbnail(_thumb(path, preset="small", encode=keep))).output.inline)
        everything = pb.EncodeOptions(metadata=pb.METADATA_POLICY_KEEP_ALL)
        kept = _open(
            (await svc.stub.Thumbnail(_thumb(path, preset="small", encode=everything))).output.inline
        )
    assert not stripped.getexif()
    assert "icc_profile" not in stripped.info
    assert "exif" not in stripped.info
    assert dict(rights.getexif()) == {0x8298: "(c) Test", 0x013B: "Ada Lovelace"}
    assert "icc_profile" not in rights.info
    assert kept.getexif()[0x010F] == "TestCam"
    assert kept.getexif()[0x0112] == 1
    assert stripped.size == (120, 160)  # orientation 6 applied: portrait


async def test_colour_is_converted_to_srgb_from_the_embedded_profile(processing: Factory) -> None:
    red = M.save(Image.new("RGB", (60, 40), (255, 0, 0)), "PNG", icc_profile=M.rgb_swapped_profile())
    async with processing() as svc:
        reply = await svc.stub.Thumbnail(_thumb(inline=red, size=pb.Size(width=30), encode=_png()))
    r, _, b = M.px(_open(reply.output.inline).convert("RGB"), (10, 10))
    assert b > 200
    assert r < 60


async def test_unusual_sources(processing: Factory) -> None:
    async with processing() as svc:
        cmyk = _open(
            (
                await svc.stub.Thumbnail(_thumb(inline=M.cmyk_jpeg(), preset="small", encode=_png()))
            ).output.inline
        )
        assert cmyk.mode == "RGB"
        assert M.px(cmyk, (5, 5))[0] < 40
        deep = _open(
            (
                await svc.stub.Thumbnail(
                    _thumb(inline=M.sixteen_bit_png(), size=pb.Size(width=128), encode=_png())
                )
            ).output.inline
        )
        assert deep.mode == "L"
        assert M.px(deep, (127, 5))[0] > 240
        assert M.px(deep, (0, 5))[0] < 10
        palette = _open(
            (
                await svc.stub.Thumbnail(
                    _thumb(inline=M.palette_png_with_transparency(), preset="tiny", encode=_png())
                )
            ).output.inline
        )
        assert palette.mode == "RGBA"
        assert M.px(palette, (1, 1))[3] == 0
        assert M.px(palette, (32, 32))[3] == 255
        grey = _open(
            (
                await svc.stub.Thumbnail(
                    _thumb(inline=M.save(M.photo(300, 200).convert("L"), "JPEG"), preset="tiny")
                )
            ).output.inline
        )
        assert grey.mode == "L"
        assert grey.size == (64, 43)
        one = M.save(Image.new("RGB", (1, 1), (1, 2, 3)), "PNG")
        kept = await svc.stub.Thumbnail(_thumb(inline=one, preset="gallery", encode=_png()))
        assert _open(kept.output.inline).size == (1, 1)  # no upscaling unless asked
        grown = await svc.stub.Thumbnail(_thumb(inline=one, preset="tiny", allow_upscale=True, encode=_png()))
        assert _open(grown.output.inline).size == (64, 64)
        wide = M.save(M.photo(8000, 200), "JPEG")
        panorama = await svc.stub.Thumbnail(_thumb(inline=wide, preset="large"))
        assert _open(panorama.output.inline).size == (640, 16)
        gif = await svc.stub.Thumbnail(_thumb(inline=M.animated("GIF"), preset="tiny", encode=_png()))
        assert _open(gif.output.inline).size == (64, 48)


async def test_store_mode_writes_a_content_addressed_file_and_repeats_are_free(processing: Factory) -> None:
    async with processing() as svc:
        data = M.save(M.photo(500, 400), "JPEG")
        path = svc.put("s.jpg", data)
        store = pb.EncodeOptions(output_mode=media_pb2.OUTPUT_MODE_STORE)
        first = await svc.stub.Thumbnail(_thumb(path, preset="small", encode=store))
        again = await svc.stub.Thumbnail(_thumb(path, preset="small", encode=store))
        inline_same = await svc.stub.Thumbnail(_thumb(inline=data, preset="small", encode=store))
        stored = (svc.derived / first.output.stored_path).read_bytes()
    assert first.output.WhichOneof("location") == "stored_path"
    assert first.output.stored_path.endswith(f"{first.output.content_key}.jpg")
    assert _open(stored).size == (160, 128)
    assert len(stored) == first.output.size_bytes
    assert again.operation.cached
    assert again.output.stored_path == first.output.stored_path
    assert inline_same.output.content_key == first.output.content_key  # the key is the content, not the path
    assert hashlib.sha256(stored).hexdigest() != first.output.content_key


async def test_bad_targets_name_the_field(processing: Factory) -> None:
    async with processing() as svc:
        path = svc.put("p.jpg", M.save(M.photo(100, 100), "JPEG"))
        for request, field in (
            (_thumb(path), "target"),
            (_thumb(path, preset="huge"), "preset"),
            (_thumb(path, size=pb.Size(width=-1, height=5)), "size"),
            (_thumb(path, size=pb.Size(width=10), fit=pb.FIT_MODE_COVER), "size"),
            (_thumb(path, preset="tiny", encode=pb.EncodeOptions(quality=101)), "encode.quality"),
            (_thumb(path, preset="tiny", fit=99), "fit"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await svc.stub.Thumbnail(request)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
            bad = detail(caught.value, error_details_pb2.BadRequest)
            assert bad is not None
            assert bad.field_violations[0].field == field, (field, caught.value.details())
