"""The processing and batch benchmarks' photos: the suite's deterministic camera JPEGs
(services/sample/photos.py), made once and cached under .bench/."""

from __future__ import annotations

from pathlib import Path

from services.sample.photos import GENERATOR_VERSION, make_photo

__all__ = ["GENERATOR_VERSION", "make_photo", "photo_set"]


def photo_set(directory: Path, count: int, width: int = 4000, height: int = 3000) -> list[Path]:
    """``count`` photos in ``directory`` (made once, reused while the generator version is the same)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = directory / f"photo_v{GENERATOR_VERSION}_{width}x{height}_{index:03d}.jpg"
        if not path.exists():
            partial = path.with_suffix(".part")
            partial.write_bytes(make_photo(index, width, height))
            partial.rename(path)
        paths.append(path)
    return paths
