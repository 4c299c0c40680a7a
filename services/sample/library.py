"""The sample library: a few dozen generated files that show what the suite does on a first run.

Camera-like photos of varied sizes and orientations from three (invented) cameras, two photos with
problems quality analysis names (one out of focus, one underexposed), two short H.264 clips and
two graphics (a PNG with transparency, a WebP banner). Everything is generated, deterministic and
written under ``sample/`` of the media root; nothing is downloaded.

The files are written to a hidden staging directory first and moved into place in one rename, so
an interrupted run leaves no half-written library (the batch import skips hidden entries).
"""

from __future__ import annotations

import functools
import io
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from services.sample.photos import Camera, make_photo
from services.sample.video import make_clip

__all__ = [
    "SAMPLE",
    "SAMPLE_DIR",
    "STAGING_DIR",
    "SampleFile",
    "library_is_empty",
    "write_sample",
]

SAMPLE_DIR = "sample"
STAGING_DIR = ".sample-partial"
# An interrupted first run leaves only this behind; it does not make the library "not empty".
_IGNORED = frozenset({STAGING_DIR})

_CAMERAS = {
    "2024-06-harbour": (Camera("Northlight", "NX-5", "Northlight 18-55mm"), "IMG_{:04d}.jpg", "Harbour"),
    "2024-07-city": (Camera("Kestrel", "K2", "Kestrel 35mm f/1.8"), "DSC{:05d}.jpg", "Main street"),
    "2024-08-garden": (Camera("Pixelle", "P7", "Pixelle wide 4.2mm"), "PXL_{:04d}.jpg", "Garden path"),
}
# (stored width, stored height, EXIF orientation): landscape, portrait stored upright, portrait
# stored sideways (6 and 8, as cameras write them), upside down (3), square, 16:9, small.
_SHAPES = (
    (2400, 1600, 1),
    (1600, 1200, 1),
    (2400, 1600, 6),
    (1200, 1600, 1),
    (2048, 1536, 8),
    (3000, 2000, 1),
    (1600, 1600, 1),
    (1920, 1080, 1),
    (1024, 768, 1),
    (2400, 1600, 3),
    (1600, 1200, 6),
)
_PHOTOS_PER_FOLDER = (12, 12, 8)


@dataclass(frozen=True)
class SampleFile:
    """One file of the sample: where it goes (relative to the media root) and how it is made."""

    path: str
    kind: str  # "photo", "video" or "graphic"
    make: Callable[[], bytes]
    note: str = ""


def _logo() -> bytes:
    image = Image.new("RGBA", (512, 512), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((32, 32, 480, 480), fill=(43, 108, 176, 255))
    draw.rectangle((150, 200, 362, 330), fill=(255, 255, 255, 230))
    draw.polygon([(150, 330), (230, 250), (290, 310), (362, 230), (362, 330)], fill=(128, 90, 213, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _banner() -> bytes:
    with Image.open(io.BytesIO(make_photo(90, 1500, 500, orientation=1, caption="mediasuite"))) as photo:
        buffer = io.BytesIO()
        photo.save(buffer, format="WEBP", quality=80)
    return buffer.getvalue()


def _photos() -> Iterator[SampleFile]:
    index = 0
    for (folder, (camera, pattern, caption)), count in zip(_CAMERAS.items(), _PHOTOS_PER_FOLDER, strict=True):
        for number in range(count):
            width, height, orientation = _SHAPES[index % len(_SHAPES)]
            make = functools.partial(
                make_photo,
                index,
                width,
                height,
                orientation=orientation,
                camera=camera,
                caption=caption,
                software="mediasuite sample 1",
            )
            name = pattern.format(101 + number * 3)
            yield SampleFile(f"{SAMPLE_DIR}/{folder}/{name}", "photo", make)
            index += 1


def _sample() -> tuple[SampleFile, ...]:
    camera = _CAMERAS["2024-06-harbour"][0]
    problems = (
        SampleFile(
            f"{SAMPLE_DIR}/problems/out-of-focus.jpg",
            "photo",
            functools.partial(
                make_photo, 9, 2400, 1600, orientation=1, camera=camera, caption="Harbour", blur=6, grain=0.3
            ),
            "out of focus: quality analysis calls it blurry",
        ),
        SampleFile(
            f"{SAMPLE_DIR}/problems/underexposed.jpg",
            "photo",
            functools.partial(make_photo, 15, 2000, 1500, orientation=1, camera=camera, exposure=0.25),
            "too dark: quality analysis calls it underexposed",
        ),
    )
    media = (
        SampleFile(f"{SAMPLE_DIR}/video/harbour-pan.mp4", "video", functools.partial(make_clip, 1)),
        SampleFile(
            f"{SAMPLE_DIR}/video/street-fade-in.mp4",
            "video",
            functools.partial(make_clip, 2, 480, 270, seconds=3.0, black=0.5),
            "opens on half a second of black: its thumbnail is the first frame with content",
        ),
        SampleFile(f"{SAMPLE_DIR}/graphics/logo.png", "graphic", _logo),
        SampleFile(f"{SAMPLE_DIR}/graphics/banner.webp", "graphic", _banner),
    )
    return (*_photos(), *problems, *media)


SAMPLE: tuple[SampleFile, ...] = _sample()


def library_is_empty(root: Path) -> bool:
    """Whether the media root holds nothing (a missing root is empty; a staging leftover is ignored)."""
    if not root.exists():
        return True
    with os.scandir(root) as entries:
        return not any(entry.name not in _IGNORED for entry in entries)


def write_sample(
    root: Path,
    on_file: Callable[[SampleFile], None] = lambda _f: None,
    files: tuple[SampleFile, ...] = SAMPLE,
) -> list[Path]:
    """Write the sample under ``root/sample`` and return the paths written.

    ``on_file`` is called after each file is written. Refuses (FileExistsError) when
    ``root/sample`` exists: the sample never replaces anything. (Generating in two threads measured
    no faster here: it runs while the services start, which keep both cores busy.)
    """
    target = root / SAMPLE_DIR
    if target.exists():
        raise FileExistsError(f"{target} exists: the sample is written only into an empty library")
    staging = root / STAGING_DIR
    shutil.rmtree(staging, ignore_errors=True)

    written = []
    for sample_file in files:
        path = staging / sample_file.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(sample_file.make())
        written.append(root / sample_file.path)
        on_file(sample_file)
    (staging / SAMPLE_DIR / "ABOUT.txt").write_text(_about(files))
    os.rename(staging / SAMPLE_DIR, target)
    staging.rmdir()
    return written


def _about(files: tuple[SampleFile, ...]) -> str:
    notes = "\n".join(f"  {f.path.removeprefix(SAMPLE_DIR + '/')}: {f.note}" for f in files if f.note)
    return (
        "A sample library generated by `mediasuite up` on its first run (nothing here was downloaded).\n"
        f"{sum(f.kind == 'photo' for f in files)} photos from three invented cameras, in varied sizes "
        "and EXIF orientations, two short clips and two graphics. Worth a look:\n"
        f"{notes}\n"
        "Delete the whole library directory to have it generated again on the next start, or start\n"
        "with `mediasuite up --no-sample` (or MEDIASUITE_SAMPLE=off) to start empty.\n"
    )
