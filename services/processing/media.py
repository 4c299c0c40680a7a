"""Media references: a path under the media root (never outside it) or inline bytes, and their hashes.

A :class:`Source` is plain data that travels to a worker process: the resolved path (read there,
so large files are not copied through a pipe) or the bytes themselves, plus the content hash when
it is already known.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from services.processing.limits import Limits
from services.runtime.errors import InvalidArgument, NotFound
from services.runtime.paths import confine

__all__ = ["HashMemo", "MediaRoot", "Source", "content_hash", "read_source"]

_HASH_CHUNK = 4 * 1024**2


def content_hash(data: bytes | memoryview) -> str:
    """``sha256:<hex>`` of the bytes (sha256 runs on the CPU's SHA instructions; it beat blake2b here)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Source:
    """One media item ready to process: a checked absolute path, or inline bytes."""

    field: str
    path: str = ""
    data: bytes = b""
    relative_path: str = ""
    size_bytes: int = 0
    mtime_ns: int = 0
    content_hash: str = ""

    @property
    def label(self) -> str:
        """How error messages name the item."""
        return f"{self.field} {self.relative_path!r}" if self.path else f"{self.field} (inline)"

    def with_hash(self, digest: str) -> Source:
        """The same source with its content hash known."""
        return Source(
            self.field, self.path, self.data, self.relative_path, self.size_bytes, self.mtime_ns, digest
        )


class MediaRoot:
    """Resolves paths relative to the media root, refusing every way out of it."""

    def __init__(self, root: Path, limits: Limits) -> None:
        self.root = root
        self._real_root = Path(os.path.realpath(root))
        self._limits = limits

    def inline(self, data: bytes, field: str) -> Source:
        """Inline bytes, checked against the inline limit."""
        if len(data) > self._limits.max_inline_bytes:
            raise self._limits.exceeded("max_inline_bytes", len(data), f"inline media {field}")
        if not data:
            raise InvalidArgument(f"{field} is empty (0 bytes): send the media's bytes", field=field)
        return Source(field, data=data, size_bytes=len(data))

    def resolve(self, relative: str, field: str) -> Source:
        """A path under the root: PERMISSION_DENIED for absolute paths, ``..`` and symlinks leaving it."""
        if not relative or "\x00" in relative:
            raise InvalidArgument(f"{field} must be a non-empty path without NUL characters", field=field)
        real, info, posix = confine(self._real_root, relative, field)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidArgument(f"{field} {relative!r} is not a regular file", field=field)
        if info.st_size > self._limits.max_file_bytes:
            raise self._limits.exceeded("max_file_bytes", info.st_size, f"file {relative!r}")
        if info.st_size == 0:
            raise InvalidArgument(f"{field} {relative!r} is empty (0 bytes)", field=field)
        return Source(
            field,
            path=str(real),
            relative_path=str(posix),
            size_bytes=info.st_size,
            mtime_ns=info.st_mtime_ns,
        )


def read_source(source: Source, limits: Limits) -> bytes:
    """The bytes of a source (read from disk for a path, bounded by the file limit)."""
    if not source.path:
        return source.data
    try:
        with open(source.path, "rb") as handle:
            data = handle.read(limits.max_file_bytes + 1)
    except OSError as error:
        raise NotFound(f"{source.label} cannot be read: {error.strerror}") from None
    if len(data) > limits.max_file_bytes:
        raise limits.exceeded("max_file_bytes", len(data), f"file {source.relative_path!r}")
    if not data:
        raise InvalidArgument(f"{source.label} is empty (0 bytes)", field=source.field)
    return data


class HashMemo:
    """Content hashes of files already hashed, keyed by (device, inode, size, mtime): a changed file
    gets a new key, so a stale hash is never used. Bounded (least recently used out); thread-safe."""

    def __init__(self, capacity: int = 8192) -> None:
        self._capacity = capacity
        self._hashes: OrderedDict[tuple[int, int, int, int], str] = OrderedDict()
        self._lock = threading.Lock()

    def hash_of(self, source: Source) -> str:
        """The source's content hash, from the memo when the file is unchanged. Blocking: call off-loop."""
        if source.content_hash:
            return source.content_hash
        if not source.path:
            return content_hash(source.data)
        info = os.stat(source.path)
        key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        with self._lock:
            found = self._hashes.get(key)
            if found is not None:
                self._hashes.move_to_end(key)
                return found
        digest = hashlib.sha256()
        with open(source.path, "rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
        value = "sha256:" + digest.hexdigest()
        with self._lock:
            self._hashes[key] = value
            if len(self._hashes) > self._capacity:
                self._hashes.popitem(last=False)
        return value
