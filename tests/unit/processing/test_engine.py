"""Engine pieces on their own: fit planning, JPEG quality estimation, byte sniffing, SSIM, EXIF typing."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from services.processing.engine.decode import describe_bytes
from services.processing.engine.exif import read_exif
from services.processing.engine.geometry import crop_position, plan_fit
from services.processing.engine.quality import estimate_jpeg_quality
from services.processing.engine.transcode import ssim
from services.runtime.errors import InvalidArgument
from tests.support import media as M


def test_plan_fit_contain_cover_fill() -> None:
    assert plan_fit((4000, 3000), (256, 256), "contain", False).resize == (256, 192)
    assert plan_fit((4000, 3000), (256, 0), "contain", False).resize == (256, 192)
    cover = plan_fit((4000, 3000), (256, 256), "cover", False)
    assert (cover.resize, cover.crop) == ((342, 256), (256, 256))
    assert plan_fit((100, 50), (400, 400), "contain", False).resize == (100, 50)
    assert plan_fit((100, 50), (400, 400), "contain", True).resize == (400, 200)
    assert plan_fit((100, 50), (30, 90), "fill", False).resize == (30, 50)
    with pytest.raises(InvalidArgument):
        plan_fit((10, 10), (0, 0), "contain", False)


def test_gravity_places_the_crop() -> None:
    image = Image.new("RGB", (300, 100))
    assert crop_position(image, (100, 100), "west").x == 0
    assert crop_position(image, (100, 100), "center").x == 100
    assert crop_position(image, (100, 100), "east").x == 200


@pytest.mark.parametrize("quality", [10, 35, 50, 75, 90, 100])
def test_jpeg_quality_is_read_back_from_the_tables(quality: int) -> None:
    data = M.save(M.photo(64, 64), "JPEG", quality=quality)
    with Image.open(io.BytesIO(data)) as image:
        assert estimate_jpeg_quality(image) == quality


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"%PDF-1.4", "PDF"),
        (b"<html>", "HTML"),
        (b"hello world\n", "text"),
        (b"\x00\x00\x00\x18ftypmp42", "video"),
        (b"\xff\xd8\xff\x00", "JPEG"),
        (bytes(range(200, 216)), "unrecognised"),
    ],
)
def test_bytes_are_described_for_error_messages(data: bytes, words: str) -> None:
    assert words in describe_bytes(data)


def test_ssim_is_one_for_equal_images_and_drops_with_noise() -> None:
    rng = np.random.default_rng(0)
    a = np.tile(np.linspace(0, 255, 64), (64, 1))
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, np.clip(a + rng.normal(0, 40, a.shape), 0, 255)) < 0.7


def test_malformed_exif_values_are_skipped_not_fatal() -> None:
    exif = Image.Exif()
    exif[0x010F] = b"\xff\xfeMaker\x00"
    exif[0x0112] = 42  # not an orientation
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "not a date"
    sub[0x8827] = "lots"
    typed = read_exif(exif)
    assert typed.orientation == 0
    assert typed.taken_at is None
    assert typed.iso == 0
    assert "Maker" in typed.make
