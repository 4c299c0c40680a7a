"""Probe and ProbeMany through a real server: header facts, typed EXIF, hashes, per-item errors."""

from __future__ import annotations

import datetime as dt
import hashlib

from mediasuite.common.v1 import media_pb2
from mediasuite.processing.v1 import processing_service_pb2 as pb
from tests.service.processing.conftest import Factory
from tests.support import media as M


def _ref(path: str = "", inline: bytes = b"") -> media_pb2.MediaRef:
    return media_pb2.MediaRef(path=path) if path else media_pb2.MediaRef(inline=inline)


async def test_probe_reports_header_exif_and_hashes(processing: Factory) -> None:
    data = M.oriented_jpeg(6)
    async with processing() as svc:
        path = svc.put("cam/img.jpg", data)
        reply = await svc.stub.Probe(
            pb.ProbeRequest(media=_ref(path), content_hash=True, perceptual_hash=True, raw_exif=True)
        )
    info = reply.info
    assert (info.format, info.media_type, info.mode, info.bit_depth) == ("JPEG", "image/jpeg", "RGB", 8)
    assert (info.width, info.height, info.display_width, info.display_height) == (400, 600, 600, 400)
    assert (info.frame_count, info.animated, info.size_bytes) == (1, False, len(data))
    assert info.content_hash == "sha256:" + hashlib.sha256(data).hexdigest()
    assert len(info.perceptual_hash) == 16
    exif = info.exif
    assert (exif.make, exif.model, exif.lens, exif.orientation, exif.iso) == (
        "TestCam",
        "Model X100",
        "Test Lens 35mm",
        6,
        400,
    )
    assert abs(exif.exposure_time_s - 1 / 250) < 1e-9
    assert exif.f_number == 2.8
    assert exif.focal_length_mm == 35
    taken = exif.taken_at.ToDatetime(tzinfo=dt.UTC)
    assert taken == dt.datetime(2024, 5, 17, 12, 30, 5, tzinfo=dt.UTC)  # 14:30:05 at +02:00
    assert abs(exif.gps.latitude - 48.8582) < 1e-3
    assert abs(exif.gps.longitude - 2.2945) < 1e-3
    assert exif.gps.altitude_m == 35
    assert info.raw_exif["Make"] == "TestCam"
    assert "GPSLatitude" in info.raw_exif
    assert info.modified_at.seconds > 0


async def test_probe_without_hashes_leaves_them_empty(processing: Factory) -> None:
    async with processing() as svc:
        reply = await svc.stub.Probe(pb.ProbeRequest(media=_ref(inline=M.save(M.photo(64, 48), "PNG"))))
    assert reply.info.format == "PNG"
    assert not reply.info.content_hash
    assert not reply.info.perceptual_hash
    assert not reply.info.raw_exif
    assert not reply.info.HasField("modified_at")


async def test_probe_of_special_images(processing: Factory) -> None:
    async with processing() as svc:
        deep = (await svc.stub.Probe(pb.ProbeRequest(media=_ref(inline=M.sixteen_bit_png())))).info
        gif = (await svc.stub.Probe(pb.ProbeRequest(media=_ref(inline=M.animated("GIF"))))).info
        webp = (await svc.stub.Probe(pb.ProbeRequest(media=_ref(inline=M.animated("WEBP"))))).info
        icc = M.save(M.photo(40, 30), "PNG", icc_profile=M.rgb_swapped_profile())
        tagged = (await svc.stub.Probe(pb.ProbeRequest(media=_ref(inline=icc)))).info
        palette = (
            await svc.stub.Probe(pb.ProbeRequest(media=_ref(inline=M.palette_png_with_transparency())))
        ).info
    assert (deep.mode, deep.bit_depth) == ("I;16", 16)
    assert (gif.format, gif.frame_count, gif.animated) == ("GIF", 6, True)
    assert (webp.format, webp.frame_count, webp.animated) == ("WEBP", 6, True)
    assert tagged.has_icc_profile
    assert tagged.icc_description == "RGB-swapped test profile"
    assert palette.mode == "P"


async def test_the_same_picture_has_the_same_perceptual_hash_in_any_encoding(processing: Factory) -> None:
    picture = M.photo(640, 480)
    async with processing() as svc:
        hashes = []
        for data in (
            M.save(picture, "PNG"),
            M.save(picture, "JPEG", quality=70),
            M.save(picture.resize((320, 240)), "WEBP"),
        ):
            reply = await svc.stub.Probe(pb.ProbeRequest(media=_ref(inline=data), perceptual_hash=True))
            hashes.append(int(reply.info.perceptual_hash, 16))
        other = await svc.stub.Probe(
            pb.ProbeRequest(media=_ref(inline=M.save(M.photo(640, 480, seed=9), "PNG")), perceptual_hash=True)
        )
    assert all(bin(h ^ hashes[0]).count("1") <= 4 for h in hashes)
    assert bin(int(other.info.perceptual_hash, 16) ^ hashes[0]).count("1") > 10


async def test_probe_many_answers_each_item_in_order(processing: Factory) -> None:
    async with processing() as svc:
        good = svc.put("good.jpg", M.save(M.photo(100, 80), "JPEG"))
        svc.put("broken.jpg", b"<html>not an image</html>")
        request = pb.ProbeManyRequest(
            media=[
                _ref(good),
                _ref("missing.jpg"),
                _ref("../outside.jpg"),
                _ref("broken.jpg"),
                media_pb2.MediaRef(),
                _ref(good),
            ],
            content_hash=True,
        )
        reply = await svc.stub.ProbeMany(request)
    kinds = [r.WhichOneof("result") for r in reply.results]
    assert kinds == ["info", "error", "error", "error", "error", "info"]
    codes = [r.error.code_name for r in reply.results if r.WhichOneof("result") == "error"]
    assert codes == ["NOT_FOUND", "PERMISSION_DENIED", "INVALID_ARGUMENT", "INVALID_ARGUMENT"]
    assert "HTML" in reply.results[3].error.message
    assert reply.results[3].error.field == "media[3].path"
    assert reply.results[0].info.content_hash == reply.results[5].info.content_hash != ""
