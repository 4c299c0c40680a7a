"""Freshness of entries derived from a source file: fingerprints checked, files under the media root.

A fingerprint names its source by a path relative to the media root (absolute paths and ``..``
are refused) plus size and mtime, or a content hash ("sha256:<hex>"). Checking a file stats it
(and hashes it only when size or mtime changed and the entry recorded a hash, so a touched but
identical file stays fresh). File-system work runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from services.cache.entries import Fingerprint
from services.runtime.errors import FailedPrecondition, InvalidArgument, PermissionDenied

__all__ = ["SourceChecker", "check_fingerprint"]

log = logging.getLogger("mediasuite.cache.freshness")

MAX_PATH_BYTES = 4096
_HASH = re.compile(r"^([a-z0-9_]{2,20}):([0-9a-fA-F]{16,256})$")
_READ_CHUNK = 1 << 20
HASH_ALGORITHMS = frozenset({"sha256", "sha512", "sha1", "md5", "blake2b", "blake2s", "sha3_256"})


def check_fingerprint(fingerprint: Fingerprint, field: str = "fingerprint") -> None:
    """Refuse a fingerprint whose path could leave the media root or whose hash cannot be checked."""
    path = fingerprint.path
    if not path:
        raise InvalidArgument(f"{field}.path must name the source file", field=f"{field}.path")
    if len(path.encode()) > MAX_PATH_BYTES or "\x00" in path:
        raise InvalidArgument(
            f"{field}.path must be at most {MAX_PATH_BYTES} bytes without NUL", field=f"{field}.path"
        )
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise PermissionDenied(
            f"{field}.path {path[:200]!r} must be relative to the media root, without '..' or backslashes",
            reason="PATH_OUTSIDE_MEDIA_ROOT",
            metadata={"field": f"{field}.path"},
        )
    if fingerprint.size_bytes < 0 or fingerprint.mtime_ns < 0:
        raise InvalidArgument(
            f"{field}.size_bytes and {field}.mtime_ns must not be negative", field=f"{field}.size_bytes"
        )
    if fingerprint.content_hash:
        match = _HASH.match(fingerprint.content_hash)
        if match is None or match.group(1) not in HASH_ALGORITHMS:
            raise InvalidArgument(
                f"{field}.content_hash must be '<algorithm>:<hex digest>' with one of "
                f"{', '.join(sorted(HASH_ALGORITHMS))} (e.g. 'sha256:9f86d0...')",
                field=f"{field}.content_hash",
            )


class SourceChecker:
    """Checks stored fingerprints against the files under ``media_root``."""

    def __init__(self, media_root: Path | None) -> None:
        self.media_root = media_root.resolve() if media_root is not None else None

    @property
    def enabled(self) -> bool:
        """Whether a media root is configured."""
        return self.media_root is not None

    def require(self) -> None:
        """FailedPrecondition when no media root is configured."""
        if self.media_root is None:
            raise FailedPrecondition(
                "verify_source needs the cache service's media root, and CACHE_MEDIA_ROOT is not set: set "
                "it to the media library's root directory, or state the current fingerprint instead",
                reason="CACHE_MEDIA_ROOT_UNSET",
            )

    async def fresh(self, fingerprints: Sequence[Fingerprint]) -> list[bool]:
        """For each stored fingerprint, whether its file is unchanged (one worker-thread hop)."""
        if not fingerprints:
            return []
        return await asyncio.get_running_loop().run_in_executor(None, self._fresh_all, fingerprints)

    def _fresh_all(self, fingerprints: Sequence[Fingerprint]) -> list[bool]:
        return [self._fresh(fp) for fp in fingerprints]

    def _fresh(self, stored: Fingerprint) -> bool:
        root = self.media_root
        if root is None:
            return True
        path = self._resolve(root, stored.path)
        if path is None:
            return False  # gone, a symlink loop, or outside the root: whatever came from it is stale
        try:
            stat = path.stat()
        except OSError:
            return False
        if stat.st_size == stored.size_bytes and stat.st_mtime_ns == stored.mtime_ns:
            return True
        if stored.content_hash:
            return _hash_file(path, stored.content_hash.partition(":")[0]) == stored.content_hash.lower()
        return False

    @staticmethod
    def _resolve(root: Path, relative: str) -> Path | None:
        try:
            path = (root / relative).resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not path.is_relative_to(root):
            log.warning("source %r resolves outside the media root: treated as stale", relative)
            return None
        return path


def _hash_file(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    try:
        with path.open("rb") as source:
            while chunk := source.read(_READ_CHUNK):
                digest.update(chunk)
    except OSError:
        return ""
    return f"{algorithm}:{digest.hexdigest()}"


def current_fingerprint(root: Path, relative: str) -> Fingerprint:
    """The fingerprint of a file as it is now (for callers and tests that make one)."""
    stat = os.stat(root / relative)
    return Fingerprint(relative, stat.st_size, stat.st_mtime_ns)
