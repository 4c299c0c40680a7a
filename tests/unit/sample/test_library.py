"""The sample library: what a first run shows (varied photos, two with problems quality analysis
names, clips, graphics), written all at once or not at all, never over anything."""

from __future__ import annotations

import functools
import io
import os
from pathlib import Path

import av
import pytest
from PIL import Image

from services.processing.engine.quality import analyze_quality
from services.processing.limits import Limits
from services.processing.media import Source
from services.sample.library import (
    SAMPLE,
    SAMPLE_DIR,
    STAGING_DIR,
    SampleFile,
    library_is_empty,
    write_sample,
)
from services.sample.photos import make_photo


def _by_path() -> dict[str, SampleFile]:
    return {f.path: f for f in SAMPLE}


def _issues(data: bytes) -> set[str]:
    report = analyze_quality(data, Source("media", data=data), Limits())
    return {issue.kind for issue in report.issues}


def test_the_sample_is_a_few_dozen_photos_of_varied_shapes_two_clips_and_two_graphics() -> None:
    kinds = [f.kind for f in SAMPLE]
    assert kinds.count("photo") == 34
    assert kinds.count("video") == 2
    assert kinds.count("graphic") == 2
    assert len({f.path for f in SAMPLE}) == len(SAMPLE)
    assert all(f.path.startswith(f"{SAMPLE_DIR}/") for f in SAMPLE)
    shapes, orientations, cameras = set(), set(), set()
    for sample_file in SAMPLE:
        if sample_file.kind != "photo":
            continue
        with Image.open(io.BytesIO(_bytes(sample_file))) as image:
            shapes.add(image.size)
            exif = image.getexif()
            orientations.add(exif.get(0x0112))
            cameras.add(exif.get(0x010F))
    assert len(shapes) >= 8, "sizes vary"
    assert {1, 3, 6, 8} <= orientations, "upright, upside down and both sideways orientations"
    assert len(cameras) == 3


_CACHE: dict[str, bytes] = {}


def _bytes(sample_file: SampleFile) -> bytes:
    if sample_file.path not in _CACHE:
        _CACHE[sample_file.path] = sample_file.make()
    return _CACHE[sample_file.path]


def test_quality_analysis_finds_the_blurry_and_the_dark_photo_and_passes_ordinary_ones() -> None:
    files = _by_path()
    assert "blurry" in _issues(_bytes(files[f"{SAMPLE_DIR}/problems/out-of-focus.jpg"]))
    assert "underexposed" in _issues(_bytes(files[f"{SAMPLE_DIR}/problems/underexposed.jpg"]))
    ordinary = [f for f in SAMPLE if f.kind == "photo" and "/problems/" not in f.path]
    for sample_file in ordinary[::4]:  # every shape of the cycle appears among these
        assert _issues(_bytes(sample_file)) == set(), sample_file.path


def test_the_clips_are_h264_and_one_opens_on_black() -> None:
    files = _by_path()
    clips = {f"{SAMPLE_DIR}/video/harbour-pan.mp4": 4.0, f"{SAMPLE_DIR}/video/street-fade-in.mp4": 3.0}
    for path, seconds in clips.items():
        with av.open(io.BytesIO(_bytes(files[path])), mode="r") as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            frames = list(container.decode(stream))
        assert len(frames) == round(seconds * 24)
    with av.open(io.BytesIO(_bytes(files[f"{SAMPLE_DIR}/video/street-fade-in.mp4"])), mode="r") as container:
        first = next(container.decode(video=0)).to_ndarray(format="gray")
    assert first.max() < 20, "the fade-in starts black"


def test_generation_is_deterministic() -> None:
    assert make_photo(7, 320, 240, orientation=6) == make_photo(7, 320, 240, orientation=6)
    files = _by_path()
    logo = files[f"{SAMPLE_DIR}/graphics/logo.png"]
    assert logo.make() == logo.make()


def _small(count: int) -> tuple[SampleFile, ...]:
    return tuple(
        SampleFile(f"{SAMPLE_DIR}/t/{i}.jpg", "photo", functools.partial(make_photo, i, 64, 48))
        for i in range(count)
    )


def test_written_into_place_at_once_with_an_about_file(tmp_path: Path) -> None:
    seen: list[str] = []
    written = write_sample(tmp_path, lambda f: seen.append(f.path), _small(3))
    assert [p.relative_to(tmp_path).as_posix() for p in written] == seen
    assert sorted(p.name for p in (tmp_path / SAMPLE_DIR / "t").iterdir()) == ["0.jpg", "1.jpg", "2.jpg"]
    assert "--no-sample" in (tmp_path / SAMPLE_DIR / "ABOUT.txt").read_text()
    assert not (tmp_path / STAGING_DIR).exists()
    assert not library_is_empty(tmp_path)


def test_an_interrupted_write_leaves_nothing_visible_and_the_next_one_completes(tmp_path: Path) -> None:
    def stop_after_two(sample_file: SampleFile) -> None:
        if sample_file.path.endswith("1.jpg"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_sample(tmp_path, stop_after_two, _small(4))
    assert not (tmp_path / SAMPLE_DIR).exists()
    assert os.listdir(tmp_path) == [STAGING_DIR], "only the hidden staging directory"
    assert library_is_empty(tmp_path), "a leftover staging directory does not count"
    write_sample(tmp_path, files=_small(4))
    assert len(list((tmp_path / SAMPLE_DIR / "t").iterdir())) == 4
    assert os.listdir(tmp_path) == [SAMPLE_DIR]


def test_never_written_over_anything(tmp_path: Path) -> None:
    (tmp_path / SAMPLE_DIR).mkdir()
    (tmp_path / SAMPLE_DIR / "mine.jpg").write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        write_sample(tmp_path, files=_small(1))
    assert (tmp_path / SAMPLE_DIR / "mine.jpg").read_bytes() == b"keep"
    assert library_is_empty(tmp_path / "missing")
    assert not library_is_empty(tmp_path)
