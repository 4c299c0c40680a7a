"""The write-ahead journal of batches in Redis: records, selections, per-item bits, staged changes
and the sequenced event stream. Every write is one script (``scripts.py``), so a batch killed at
any moment is found on restart exactly as far as it got."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis

from services.batch import scripts
from services.batch.model import TERMINAL, BatchRecord
from services.runtime.config import format_duration
from services.runtime.errors import InvalidArgument, NotFound

__all__ = ["Journal", "Recorded"]

_FOLLOW_BLOCK_MS = 5000


@dataclass(frozen=True)
class Recorded:
    """One item's outcome, ready to journal."""

    index: int
    outcome: str  # done | failed | skipped
    event: dict[str, Any]
    catalog_id: str = ""
    base_revision: int = 0
    payload: str = ""


class Journal:
    """Batch state under ``<prefix>b:``."""

    def __init__(self, client: aioredis.Redis, prefix: str, events_kept: int, retention_s: float) -> None:
        self.client = client
        self.prefix = prefix
        self.events_kept = events_kept
        self.retention_s = retention_s
        self._record = client.register_script(scripts.RECORD)
        self._commit = client.register_script(scripts.COMMIT)
        self._emit = client.register_script(scripts.EMIT)
        self._create = client.register_script(scripts.CREATE)

    def key(self, batch_id: str, part: str = "") -> str:
        """Redis key of a batch (``part``: ev, sel, bits, stage)."""
        return f"{self.prefix}b:{batch_id}" + (f":{part}" if part else "")

    # ---- records -------------------------------------------------------------------------------

    async def create(self, record: BatchRecord, idempotency_key: str, first: dict[str, Any]) -> str:
        """Journal a new batch with its first event; with a used idempotency key, the existing id."""
        member = f"{record.created_ns:020d}:{record.id}"
        args: list[Any] = [self.prefix, record.id, idempotency_key, member, _dump(first)]
        for name, value in record.fields().items():
            args += [name, value]
        found = await self._create(args=args)
        return _text(found)

    async def get(self, batch_id: str) -> BatchRecord:
        """A batch; NOT_FOUND when unknown (or expired)."""
        raw: dict[bytes, bytes] = cast(Any, await self.client.hgetall(self.key(batch_id)))
        if not raw:
            raise NotFound(
                f"no batch has id {batch_id!r} (finished batches are kept for "
                f"BATCH_RETENTION={format_duration(self.retention_s)})"
            )
        return BatchRecord.from_fields(batch_id, raw)

    async def active_ids(self) -> list[str]:
        """Ids of batches not finished (what a restart resumes)."""
        return sorted(_text(m) for m in await self.client.smembers(f"{self.prefix}b:active"))

    async def list_batches(
        self, states: Sequence[str], page_size: int, token: str
    ) -> tuple[list[BatchRecord], str]:
        """Batches newest first, only in ``states`` when given; the next page's token."""
        key = f"{self.prefix}b:all"
        top = f"({_untoken(token)}" if token else "+"
        found: list[BatchRecord] = []
        last = ""
        while True:
            members = await self.client.zrevrangebylex(key, top, "-", 0, 200)
            if not members:
                return found, ""
            texts = [_text(m) for m in members]
            async with self.client.pipeline(transaction=False) as pipe:
                for text in texts:
                    pipe.hgetall(self.key(text.split(":", 1)[1]))
                rows = await pipe.execute()
            for text, raw in zip(texts, rows, strict=True):
                if not raw:
                    await self.client.zrem(key, text)  # expired
                    continue
                record = BatchRecord.from_fields(text.split(":", 1)[1], raw)
                if states and record.state not in states:
                    continue
                if len(found) == page_size:
                    return found, _token(last)
                found.append(record)
                last = text
            top = f"({texts[-1]}"

    async def set_fields(self, batch_id: str, **fields: str) -> None:
        """Change batch fields without an event (bookkeeping such as cancel_requested)."""
        await self.client.hset(self.key(batch_id), mapping=cast(Any, fields))

    async def emit(self, batch_id: str, events: Sequence[dict[str, Any]], **fields: str) -> int:
        """Change fields and append events in one step; the last sequence number."""
        args: list[Any] = [self.prefix, batch_id, self.events_kept, len(fields)]
        for name, value in fields.items():
            args += [name, value]
        args += [_dump(e) for e in events]
        return int(await self._emit(args=args))

    async def finish(self, batch_id: str) -> None:
        """The batch is over: forget it as active and let its keys expire after the retention."""
        seconds = max(1, int(self.retention_s))
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.srem(f"{self.prefix}b:active", batch_id)
            for part in ("", "ev", "bits"):
                pipe.expire(self.key(batch_id, part), seconds)
            pipe.delete(self.key(batch_id, "sel"), self.key(batch_id, "stage"))
            await pipe.execute()

    async def expire_idempotency_key(self, key: str) -> None:
        """Let an idempotency key expire with its batch."""
        if key:
            await self.client.expire(f"{self.prefix}b:idem:{key}", max(1, int(self.retention_s)))

    # ---- selection -------------------------------------------------------------------------------

    async def clear_selection(self, batch_id: str) -> None:
        """Forget a partly written selection (resolution starts again)."""
        await self.client.delete(self.key(batch_id, "sel"))

    async def append_selection(self, batch_id: str, entries: Sequence[str]) -> None:
        """Add entries to the selection."""
        if entries:
            await self.client.rpush(self.key(batch_id, "sel"), *entries)

    async def selection_length(self, batch_id: str) -> int:
        """Entries in the selection."""
        return int(await self.client.llen(self.key(batch_id, "sel")))

    async def selection_page(self, batch_id: str, start: int, count: int) -> list[str]:
        """Entries ``start`` .. ``start + count - 1``."""
        rows = await self.client.lrange(self.key(batch_id, "sel"), start, start + count - 1)
        return [_text(r) for r in rows]

    async def recorded_bits(self, batch_id: str, start: int, count: int) -> list[bool]:
        """Whether items ``start`` .. ``start + count - 1`` are already recorded (``start`` % 8 == 0)."""
        assert start % 8 == 0  # noqa: S101 (a precondition our one caller keeps: it pages by 1024)
        raw = _bytes(
            await self.client.getrange(self.key(batch_id, "bits"), start // 8, (start + count - 1) // 8)
        )
        bits = []
        for i in range(count):
            byte_index = i // 8
            byte = raw[byte_index] if byte_index < len(raw) else 0
            bits.append(bool(byte & (0x80 >> (i % 8))))
        return bits

    # ---- item outcomes -----------------------------------------------------------------------------

    async def record(self, batch_id: str, mode: str, entries: Sequence[Recorded]) -> list[str]:
        """Journal outcomes (``mode`` apply: catalog changes now; stage: at commit). Returns the
        catalog ids whose base revision is stale (then nothing was written)."""
        args: list[Any] = [self.prefix, batch_id, mode, self.events_kept, len(entries)]
        for entry in entries:
            args += [
                entry.index,
                entry.outcome,
                _dump(entry.event),
                entry.catalog_id,
                entry.base_revision,
                entry.payload,
            ]
        ok, conflicts = await self._record(args=args)
        return [] if int(ok) == 1 else [_text(c) for c in conflicts]

    async def commit(self, batch_id: str) -> list[str]:
        """Apply an atomic batch's staged changes in one step; the stale ids when it could not."""
        ok, conflicts = await self._commit(args=[self.prefix, batch_id])
        return [] if int(ok) == 1 else [_text(c) for c in conflicts]

    async def staged(self, batch_id: str, ids: Sequence[str]) -> list[str | None]:
        """Staged payloads of some items (without the base revision)."""
        rows = await self.client.hmget(self.key(batch_id, "stage"), list(ids))
        return [_text(r).split("\n", 1)[1] if r is not None else None for r in rows]

    async def restage(
        self, batch_id: str, entries: dict[str, tuple[int, str]], dropped: Sequence[str] = ()
    ) -> None:
        """Replace staged changes (re-derived after a conflict) and drop those that no longer apply."""
        key = self.key(batch_id, "stage")
        if entries:
            await self.client.hset(
                key, mapping={cid: f"{rev}\n{payload}" for cid, (rev, payload) in entries.items()}
            )
        if dropped:
            await self.client.hdel(key, *dropped)

    async def staged_entries(self, batch_id: str) -> AsyncIterator[tuple[str, str]]:
        """Every staged (catalog id, payload), streamed."""
        async for cid, value in self.client.hscan_iter(self.key(batch_id, "stage"), count=500):
            yield _text(cid), _text(value).split("\n", 1)[1]

    async def drop_stage(self, batch_id: str) -> None:
        """Forget staged changes (rollback)."""
        await self.client.delete(self.key(batch_id, "stage"))

    # ---- events ------------------------------------------------------------------------------------

    async def events(self, batch_id: str, after: int) -> AsyncIterator[tuple[int, dict[str, Any]]]:
        """Events after sequence ``after``: those kept, then new ones as they come, until the
        finished event (included)."""
        if after < 0:
            raise InvalidArgument("after_sequence must not be negative", field="after_sequence")
        await self.get(batch_id)
        key = self.key(batch_id, "ev")
        last = after
        while True:
            rows: list[tuple[bytes, dict[bytes, bytes]]] = cast(
                Any, await self.client.xrange(key, f"({last}-0", "+", count=500)
            )
            if rows:
                for entry_id, values in rows:
                    seq = int(_text(entry_id).split("-", 1)[0])
                    data: dict[str, Any] = json.loads(values[b"e"])
                    last = seq
                    yield seq, data
                    if data.get("k") == "finished":
                        return
                continue
            state = await self.client.hget(self.key(batch_id), "state")
            if state is None:
                return  # expired while watched
            if _text(state) in TERMINAL:
                seq = int(await self.client.hget(self.key(batch_id), "seq") or 0)
                if seq <= last:
                    return
                continue
            await self.client.xread({key: f"{last}-0"}, count=1, block=_FOLLOW_BLOCK_MS)


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _token(member: str) -> str:
    return member


def _untoken(token: str) -> str:
    if ":" not in token or not token.split(":", 1)[0].isdigit():
        raise InvalidArgument("page_token is not a token this service gave out", field="page_token")
    return token
