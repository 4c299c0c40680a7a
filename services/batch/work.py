"""A unit of a batch's work and what comes out of it, and the interface every kind of work
implements (import, processing operations, catalog actions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.batch.catalog import CatalogItem, OutputRef
from services.batch.changes import Change

__all__ = ["Entry", "ItemFailure", "Outcome", "UnitContext", "Worker"]

RETRYABLE = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"})


class ItemFailure(Exception):
    """One item failed for good: a status code (number and name), a message, the field at fault."""

    def __init__(self, code: int, code_name: str, message: str, field: str = "", attempts: int = 1) -> None:
        super().__init__(f"{code_name}: {message}")
        self.code = code
        self.code_name = code_name
        self.message = message
        self.field = field
        self.attempts = attempts


@dataclass(frozen=True)
class Entry:
    """One selected item: its position in the selection, its path, and its catalog record (if any)."""

    index: int
    path: str
    item_id: str
    item: CatalogItem | None


@dataclass(frozen=True)
class Outcome:
    """What became of one item. ``status``: done, failed or skipped."""

    index: int
    path: str
    item_id: str
    status: str
    change: Change | None = None
    outputs: tuple[OutputRef, ...] = ()
    failure: ItemFailure | None = None
    reason: str = ""
    attempts: int = 1
    duration_s: float = 0.0


@dataclass(frozen=True)
class UnitContext:
    """What a worker needs to know of the batch a unit belongs to."""

    batch_id: str
    atomic: bool
    item_deadline_s: float
    spec: bytes


class Worker(Protocol):
    """Does one kind of work on a unit of entries (in selection order), one outcome per entry."""

    unit_size: int

    async def run(self, context: UnitContext, entries: list[Entry]) -> list[Outcome]: ...
