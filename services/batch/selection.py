"""Selections: checked before a batch is accepted, then resolved into the batch's journaled list
(streamed into Redis a chunk at a time, never held whole), so a restarted batch works on exactly
the items it started with.

An import walks a directory of the media root (sorted, so the order is stable); ids and paths are
taken as listed; a query walks the catalog's path index and keeps the matching ids.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from collections.abc import AsyncIterator, Iterator
from functools import lru_cache
from pathlib import Path, PurePosixPath

from services.batch.catalog import item_id
from services.batch.catalog_store import CatalogStore
from services.batch.model import BatchSpec, ImportParams
from services.runtime.errors import FieldViolation, InvalidArgument, LimitExceeded
from services.runtime.paths import confine

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "MediaRoot",
    "check_selection",
    "compile_glob",
    "resolve",
]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".gif", ".bmp", ".avif"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"})
_CHUNK = 1000


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """A glob over relative paths: ``*`` and ``?`` stay within a directory, ``**/`` spans any number
    of directories, ``[...]`` is a character class."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                raise ValueError(pattern)
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.IGNORECASE)


class MediaRoot:
    """Paths relative to the media root; every way out of it is refused."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.real = Path(os.path.realpath(root))

    def resolve(self, relative: str, field: str, *, directory: bool = False) -> Path:
        """The real path of ``relative``: PERMISSION_DENIED outside the root, NOT_FOUND when absent."""
        real, info, _ = confine(self.real, relative, field)
        if directory and not stat.S_ISDIR(info.st_mode):
            raise InvalidArgument(f"{field} {relative!r} is not a directory", field=field)
        if not directory and not stat.S_ISREG(info.st_mode):
            raise InvalidArgument(f"{field} {relative!r} is not a regular file", field=field)
        return real

    def walk(self, params: ImportParams) -> Iterator[str]:
        """Relative paths of the media files an import takes, sorted, one at a time. Blocking."""
        base = self.resolve(params.directory or ".", "spec.import_directory.directory", directory=True)
        includes = [compile_glob(g) for g in params.include]
        excludes = [compile_glob(g) for g in params.exclude]

        def wanted(relative: str) -> bool:
            if any(e.match(relative) for e in excludes):
                return False
            if includes:
                return any(i.match(relative) for i in includes)
            return PurePosixPath(relative).suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS

        def visit(directory: Path) -> Iterator[str]:
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except OSError:
                return
            subdirectories = []
            for entry in entries:
                if entry.name.startswith("."):
                    continue  # hidden files and the derived store's staging areas
                try:
                    if entry.is_symlink():
                        real = Path(os.path.realpath(entry.path))
                        if self.real not in real.parents:
                            continue  # a link out of the library is never followed
                        if real.is_dir():
                            continue  # no directory links: no cycles
                    if entry.is_dir(follow_symlinks=False):
                        subdirectories.append(Path(entry.path))
                    elif entry.is_file():
                        relative = Path(entry.path).relative_to(self.real).as_posix()
                        if wanted(relative):
                            yield relative
                except (OSError, ValueError):
                    continue
            if params.recursive:
                for sub in subdirectories:
                    yield from visit(sub)

        yield from visit(base)


async def _first(iterator: Iterator[str]) -> str | None:
    return await asyncio.to_thread(next, iterator, None)


async def _check_listed(spec: BatchSpec, root: MediaRoot, catalog: CatalogStore, max_listed: int) -> int:
    """Listed ids or paths: within the limit, each once, inside the root, each in the catalog."""
    selection = spec.selection
    field = f"spec.selection.{selection.kind}"
    if not selection.values:
        raise InvalidArgument(f"{field} is empty: select at least one item", field=field)
    if len(selection.values) > max_listed:
        raise LimitExceeded(
            "max_listed", max_listed, len(selection.values), env="BATCH_MAX_LISTED", what=f"{field}"
        )
    seen: dict[str, int] = {}
    ids: list[str] = []
    for index, listed in enumerate(selection.values):
        value = listed
        if selection.kind == "paths":
            await asyncio.to_thread(root.resolve, listed, f"{field}[{index}]")
            value = PurePosixPath(listed.replace("\\", "/")).as_posix()
        if value in seen:
            raise InvalidArgument(
                f"{field}[{index}] {value!r} is listed twice (also at [{seen[value]}])",
                field=f"{field}[{index}]",
            )
        seen[value] = index
        ids.append(item_id(value) if selection.kind == "paths" else value)
    unknown: list[FieldViolation] = []
    for start in range(0, len(ids), _CHUNK):
        found = await catalog.get_many(ids[start : start + _CHUNK])
        for offset, stored in enumerate(found):
            if stored is None and len(unknown) < 10:
                index = start + offset
                unknown.append(
                    FieldViolation(
                        f"{field}[{index}]",
                        f"{selection.values[index]!r} is not in the catalog (import it first)",
                    )
                )
    if unknown:
        raise InvalidArgument(
            f"{len(unknown)}{'+' if len(unknown) == 10 else ''} selected item(s) are not in the "
            f"catalog, first {unknown[0].field}: {unknown[0].description}",
            violations=unknown,
        )
    return len(ids)


async def check_selection(spec: BatchSpec, root: MediaRoot, catalog: CatalogStore, max_listed: int) -> int:
    """Refuse a bad selection before any work: paths outside the root, unknown ids or paths, an
    empty selection (an import with no matching file, a query with no match). Returns the total
    when known without a walk (listed items), else -1."""
    if spec.kind == "import":
        walk = await asyncio.to_thread(root.walk, spec.importing)
        if await _first(walk) is None:
            raise InvalidArgument(
                f"no media file under {spec.importing.directory or '(the media root)'!r} matches "
                "(recursive, include and exclude decide which files are taken)",
                field="spec.import_directory",
            )
        return -1
    selection = spec.selection
    if selection.kind == "":
        raise InvalidArgument("spec.selection is required: ids, paths or query", field="spec.selection")
    if selection.kind in ("ids", "paths"):
        return await _check_listed(spec, root, catalog, max_listed)
    async for chunk in catalog.walk():
        if any(selection.filter.matches(item) for _, item in chunk):
            return -1
    raise InvalidArgument("spec.selection.query matches no catalog item", field="spec.selection.query")


async def resolve(spec: BatchSpec, root: MediaRoot, catalog: CatalogStore) -> AsyncIterator[list[str]]:
    """The selection's entries, a chunk at a time: relative paths (imports and path lists) or ids."""
    if spec.kind == "import":
        walk = await asyncio.to_thread(root.walk, spec.importing)
        while True:
            chunk = await asyncio.to_thread(_take, walk, _CHUNK)
            if not chunk:
                return
            yield chunk
    selection = spec.selection
    if selection.kind == "paths":
        values = [PurePosixPath(v.replace("\\", "/")).as_posix() for v in selection.values]
        for start in range(0, len(values), _CHUNK):
            yield values[start : start + _CHUNK]
    elif selection.kind == "ids":
        for start in range(0, len(selection.values), _CHUNK):
            yield list(selection.values[start : start + _CHUNK])
    else:
        async for found in catalog.walk():
            matched = [item.id for _, item in found if selection.filter.matches(item)]
            if matched:
                yield matched


def _take(iterator: Iterator[str], count: int) -> list[str]:
    out = []
    for value in iterator:
        out.append(value)
        if len(out) == count:
            break
    return out
