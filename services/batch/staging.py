"""Outputs of atomic batches: staged in a batch's own directory of the derived store, then published
together (renamed into their content addresses) or removed.

The layout is the processing service's :class:`DerivedStore` (``ab/cd/<key>.<ext>`` plus a JSON
sidecar written last), so published outputs are found again by processing like its own. The
staging directory ``<derived>/.staging/<batch id>`` is on the same file system, so each publish
is a rename: a file appears whole or not at all.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from services.processing.engine.encode import MEDIA_TYPES
from services.processing.store import DerivedStore

__all__ = ["Staging"]

_FORMATS = {media_type: fmt for fmt, media_type in MEDIA_TYPES.items()}


class Staging:
    """Staged outputs below a derived store root. Every method blocks: call it off the event loop."""

    def __init__(self, derived_root: Path) -> None:
        self.root = derived_root
        self.store = DerivedStore(derived_root)

    def directory(self, batch_id: str) -> Path:
        """Where a batch's outputs wait."""
        return self.root / ".staging" / batch_id

    def stage(self, batch_id: str, key: str, media_type: str, *, width: int, height: int, data: bytes) -> str:
        """Write one output into the batch's staging area; its future path relative to the root."""
        meta = {
            "format": _FORMATS.get(media_type, "JPEG"),
            "width": width,
            "height": height,
            "extras": {},
        }
        return DerivedStore(self.directory(batch_id)).write_with_meta(key, meta, data)

    def publish(self, batch_id: str) -> int:
        """Move every staged output to its content address (sidecars last); the count moved. Running
        it again after a crash finishes the rest. An output already published is kept as it is."""
        staging = self.directory(batch_id)
        if not staging.exists():
            return 0
        moved = 0
        # One directory at a time (memory does not grow with the number of outputs); within it the
        # outputs before their sidecars, whose presence means "complete" to the store.
        for directory, _, names in os.walk(staging):
            here = Path(directory)
            ready = [n for n in names if not n.startswith(".tmp-")]
            for name in sorted(ready, key=lambda n: n.endswith(".json")):
                target = self.root / (here / name).relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(here / name, target)
                moved += 1
        self.discard(batch_id)
        return moved

    def discard(self, batch_id: str) -> None:
        """Remove everything the batch staged (and the staging area when no other batch uses it)."""
        shutil.rmtree(self.directory(batch_id), ignore_errors=True)
        with contextlib.suppress(OSError):
            (self.root / ".staging").rmdir()

    def staged_count(self, batch_id: str) -> int:
        """Files waiting (outputs and sidecars)."""
        staging = self.directory(batch_id)
        return sum(1 for p in staging.rglob("*") if p.is_file()) if staging.exists() else 0
