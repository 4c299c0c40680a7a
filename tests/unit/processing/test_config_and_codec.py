"""Configuration checks and the cache value codec."""

from __future__ import annotations

import datetime as dt

import pytest

from services.processing.codec import from_json, pack_output, to_json, unpack_output
from services.processing.config import ProcessingConfig, parse_presets
from services.processing.engine.exif import ExifData, Gps
from services.processing.engine.probe import ImageInfo
from services.runtime.config import ConfigError, Env


def test_defaults_and_presets() -> None:
    config = ProcessingConfig.from_env(Env({}))
    assert config.presets == {"tiny": 64, "small": 160, "medium": 320, "large": 640, "gallery": 1280}
    assert config.pool.workers >= 1
    assert config.pool.mode == "process"
    assert config.cache.enabled
    assert parse_presets("a=1, b-2=30") == {"a": 1, "b-2": 30}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PROCESSING_PRESETS", "tiny"),
        ("PROCESSING_PRESETS", "big=99999"),
        ("PROCESSING_WORKER_MODE", "fibers"),
        ("PROCESSING_MAX_PIXELS", "0"),
        ("PROCESSING_MAX_INLINE_BYTES", "1GiB"),
        ("PROCESSING_CACHE", "maybe"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ProcessingConfig.from_env(Env({name: value}))
    assert caught.value.variable == name


def test_results_round_trip_through_json() -> None:
    exif = ExifData(
        make="M", taken_at=dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC), gps=Gps(1.5, 2.5, 3.0), iso=100
    )
    info = ImageInfo(
        "JPEG", "image/jpeg", 4, 3, "RGB", 8, 1, False, False, "", 10, 4, 3, exif, "ab", {"Make": "M"}
    )
    assert from_json(ImageInfo, to_json(info)) == info
    with pytest.raises(ValueError, match="ImageInfo"):
        from_json(ImageInfo, b'{"format": 1}')


def test_outputs_pack_and_refuse_garbage() -> None:
    assert unpack_output(pack_output({"format": "PNG"}, b"\x89PNG")) == ({"format": "PNG"}, b"\x89PNG")
    with pytest.raises(ValueError, match="packed"):
        unpack_output(b"garbage")
