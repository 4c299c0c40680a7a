"""The catalog in Redis: reads, filtered and ordered queries with cursors, and the walk a query
selection or a summary streams through. Writes happen only through the journal's scripts
(``scripts.RECORD`` and ``scripts.COMMIT``), so every change is journaled and can be atomic."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from services.batch.catalog import CatalogFilter, CatalogItem, OrderBy
from services.runtime.errors import InvalidArgument, NotFound

__all__ = ["CatalogStore", "Page", "Stored"]

_CHUNK = 500
_BY_PATH = OrderBy()


@dataclass(frozen=True)
class Stored:
    """An item as stored, with its revision (the base of a change)."""

    item: CatalogItem
    revision: int


@dataclass(frozen=True)
class Page:
    """One page of a query."""

    items: list[CatalogItem]
    next_token: str


def _token(order: OrderBy, member: str, filter_key: str) -> str:
    raw = json.dumps([order.index, order.descending, member, filter_key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _untoken(token: str, order: OrderBy, filter_key: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        index, descending, member, key = json.loads(raw)
    except (ValueError, TypeError):
        raise InvalidArgument(
            "page_token is not a token this service gave out: start again without it", field="page_token"
        ) from None
    if (index, descending, key) != (order.index, order.descending, filter_key):
        raise InvalidArgument(
            "page_token belongs to another query (filter or order_by changed): start again without it",
            field="page_token",
        )
    return str(member)


class CatalogStore:
    """Reads of the catalog kept under ``<prefix>c:``."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def item_key(self, item_id: str) -> str:
        """Redis key of an item's hash."""
        return f"{self.prefix}c:i:{item_id}"

    def order_key(self, index: str) -> str:
        """Redis key of an ordering index."""
        return f"{self.prefix}c:o:{index}"

    @property
    def version_key(self) -> str:
        """Redis key of the catalog version."""
        return f"{self.prefix}c:v"

    async def version(self) -> int:
        """The catalog version (moves with every change)."""
        return int(await self.client.get(self.version_key) or 0)

    async def get(self, item_id: str) -> CatalogItem:
        """One item; NOT_FOUND when the catalog has none with that id."""
        found = (await self.get_many([item_id]))[0]
        if found is None:
            raise NotFound(f"no catalog item has id {item_id!r}")
        return found.item

    async def get_many(self, ids: Sequence[str]) -> list[Stored | None]:
        """Items with their revisions, None where absent, in the order asked."""
        if not ids:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for item_id in ids:
                pipe.hmget(self.item_key(item_id), "d", "r")
            rows = await pipe.execute()
        return [
            Stored(CatalogItem.from_json(data), int(rev)) if data is not None else None for data, rev in rows
        ]

    async def count(self) -> int:
        """Number of items (trashed ones included)."""
        return int(await self.client.zcard(self.order_key("path")))

    async def walk(
        self, order: OrderBy = _BY_PATH, after: str = "", chunk: int = _CHUNK
    ) -> AsyncIterator[list[tuple[str, CatalogItem]]]:
        """Every item in ``order`` after index member ``after``, a chunk at a time, each with its index
        member (the cursor). Memory holds one chunk, whatever the catalog's size."""
        key = self.order_key(order.index)
        while True:
            if order.descending:
                top = f"({after}" if after else "+"
                members = await self.client.zrevrangebylex(key, top, "-", 0, chunk)
            else:
                bottom = f"({after}" if after else "-"
                members = await self.client.zrangebylex(key, bottom, "+", 0, chunk)
            if not members:
                return
            texts = [m.decode() if isinstance(m, bytes) else m for m in members]
            stored = await self.get_many([m.rsplit("\x00", 1)[1] for m in texts])
            yield [(m, s.item) for m, s in zip(texts, stored, strict=True) if s is not None]
            after = texts[-1]
            if len(members) < chunk:
                return

    async def query(self, flt: CatalogFilter, order: OrderBy, page_size: int, token: str) -> Page:
        """A page of items matching ``flt`` in ``order``, after the position ``token`` names; the
        next token is given only when another match exists."""
        filter_key = _filter_key(flt)
        after = _untoken(token, order, filter_key) if token else ""
        found: list[tuple[str, CatalogItem]] = []
        async for chunk in self.walk(order, after, chunk=min(1000, max(page_size + 1, 100))):
            for member, item in chunk:
                if flt.matches(item):
                    if len(found) == page_size:
                        return Page([i for _, i in found], _token(order, found[-1][0], filter_key))
                    found.append((member, item))
        return Page([i for _, i in found], "")


def _filter_key(flt: CatalogFilter) -> str:
    """A short digest of the filter, so a token is refused with another filter."""
    return hashlib.sha256(repr(flt).encode()).hexdigest()[:12]
