"""Catalog actions over a selection: tag, untag, categorize, approve, reject, trash, restore, purge.

They call no other service; each item's change is derived when it is recorded. Purge removes the
file too: in a non-atomic batch before the item is recorded (a crash in between redoes it, and a
file already gone is fine), in an atomic one after the catalog commit."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.batch.changes import Change
from services.batch.work import Entry, ItemFailure, Outcome, UnitContext

__all__ = ["CatalogWorker", "remove_file"]


def remove_file(root: Path, relative: str) -> None:
    """Delete a purged item's file (gone already is fine). Blocking."""
    (root / relative).unlink(missing_ok=True)


class CatalogWorker:
    """Applies one catalog action to units of items."""

    unit_size = 200

    def __init__(self, action: str, tags: tuple[str, ...], category: str, media_root: Path) -> None:
        self.action = action
        self.tags = tags
        self.category = category
        self.media_root = media_root

    async def run(self, context: UnitContext, entries: list[Entry]) -> list[Outcome]:
        """One outcome per entry; the change itself is checked against the catalog when recorded."""
        outcomes = []
        for entry in entries:
            if entry.item is None:
                failure = ItemFailure(5, "NOT_FOUND", f"item {entry.item_id} is no longer in the catalog")
                outcomes.append(Outcome(entry.index, entry.path, entry.item_id, "failed", failure=failure))
                continue
            if self.action == "purge" and not context.atomic:
                if entry.item.status != "trashed":
                    failure = ItemFailure(
                        9,
                        "FAILED_PRECONDITION",
                        f"item {entry.path!r} is not in the trash ({entry.item.status}): only trashed "
                        "items are purged",
                    )
                    outcomes.append(
                        Outcome(entry.index, entry.path, entry.item_id, "failed", failure=failure)
                    )
                    continue
                await asyncio.to_thread(remove_file, self.media_root, entry.item.path)
            change = Change(self.action, path=entry.path, tags=self.tags, category=self.category)
            outcomes.append(Outcome(entry.index, entry.path, entry.item_id, "done", change=change))
        return outcomes
