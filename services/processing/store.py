"""The derived store: outputs written under their content address, so a repeat is free and a retry
idempotent. ``ab/cd/<content key>.<ext>`` below the derived root; writes are atomic (temp + rename)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from services.processing.engine.encode import EXTENSIONS

__all__ = ["DerivedStore", "content_key"]


def content_key(source_hash: str, operation: str, params: Any, engine_version: str) -> str:
    """Hex sha256 of the source's hash, the operation, its parameters (canonical JSON) and the engine."""
    canonical = json.dumps(
        [source_hash, operation, params, engine_version], sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class DerivedStore:
    """Content-addressed files under a root directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def relative_path(self, key: str, extension: str) -> str:
        """Where an output with this key lives, relative to the root."""
        return f"{key[:2]}/{key[2:4]}/{key}.{extension}"

    def find_meta(self, key: str) -> tuple[dict[str, Any], str] | None:
        """The metadata and relative path of a stored output, or None. Blocking."""
        sidecar = self.root / self.relative_path(key, "json")
        try:
            meta = json.loads(sidecar.read_bytes())
            relative = self.relative_path(key, str(meta["extension"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return (meta, relative) if (self.root / relative).is_file() else None

    def write_with_meta(self, key: str, meta: dict[str, Any], data: bytes) -> str:
        """Store an output and its metadata sidecar (written last: its presence means complete). Blocking."""
        extension = EXTENSIONS.get(str(meta["format"]), "bin")
        relative = self.write(key, extension, data)
        sidecar = json.dumps({**meta, "extension": extension}, separators=(",", ":")).encode()
        self.write(key, "json", sidecar)
        return relative

    def read(self, relative: str) -> bytes:
        """The bytes of a stored output. Blocking."""
        return (self.root / relative).read_bytes()

    def write(self, key: str, extension: str, data: bytes) -> str:
        """Store ``data`` under its key (a no-op when already there); returns the relative path. Blocking."""
        relative = self.relative_path(key, extension)
        target = self.root / relative
        if target.is_file() and target.stat().st_size == len(data):
            return relative
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return relative
