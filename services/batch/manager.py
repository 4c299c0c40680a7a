"""The batch service's domain: accept batches (checked before any work), run them by priority with
bounded concurrency, cancel, list, watch, and on start resume whatever a previous process left
unfinished; on shutdown, pause what runs so the next start resumes it."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.batch.catalog_store import CatalogStore
from services.batch.journal import Journal
from services.batch.model import TERMINAL, BatchRecord, BatchSpec, event
from services.batch.runner import Deps, Runner, StopReason
from services.batch.selection import check_selection
from services.batch.slots import PrioritySlots
from services.batch.work import Worker
from services.runtime.errors import FailedPrecondition, InvalidArgument, PermissionDenied, Unavailable

__all__ = ["BatchManager"]

log = logging.getLogger("mediasuite.batch")

_RESUMED = {
    "running": "resumed: the service stopped without pausing (crash or kill); "
    "items already recorded are not redone",
    "paused": "resumed after a restart",
    "queued": "",
    "committing": "resuming the commit after a restart",
    "rolling_back": "resuming the rollback after a restart",
}


class BatchManager:
    """Every batch of this process."""

    def __init__(
        self,
        deps: Deps,
        *,
        make_worker: Callable[[BatchSpec], Worker],
        decode_spec: Callable[[bytes], BatchSpec],
        check_operation: Callable[[BatchSpec], Awaitable[None]],
        max_listed: int,
    ) -> None:
        self.deps = deps
        self.journal: Journal = deps.journal
        self.catalog: CatalogStore = deps.catalog
        self.make_worker = make_worker
        self.decode_spec = decode_spec
        self.check_operation = check_operation
        self.max_listed = max_listed
        self._batch_slots = PrioritySlots(deps.execution.max_running)
        self._runners: dict[str, Runner] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._recovery: asyncio.Task[None] | None = None
        self._closing = False
        self._lost: dict[str, str] = {}  # batches paused because Redis stopped answering -> why

    # ---- life of the process -----------------------------------------------------------------

    async def start(self) -> None:
        """Resume unfinished batches (in the background, retrying while Redis is unreachable)."""
        self._recovery = asyncio.create_task(self._recover())

    async def _recover(self) -> None:
        delay = 0.2
        while not self._closing:
            try:
                ids = await self.journal.active_ids()
                for batch_id in ids:
                    if batch_id in self._tasks:
                        continue
                    # A batch submitted meanwhile may be listed and get its runner during this read:
                    # _schedule checks again, with no await between the check and the registration.
                    record = await self.journal.get(batch_id)
                    spec = self.decode_spec(record.spec)
                    lost = self._lost.pop(batch_id, "")
                    reason = (
                        f"resumed: Redis answers again (it was unreachable: {lost})"
                        if lost
                        else _RESUMED.get(record.state, "resumed")
                    )
                    self._schedule(record, spec, reason)
                if ids:
                    log.info("resuming %d unfinished batch(es)", len(ids), extra={"fields": {"batches": ids}})
                return
            except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                log.warning("Redis unreachable (%s): unfinished batches resume once it answers", error)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)

    def _resume_when_redis_answers(self, batch_id: str, why: str) -> None:
        """Pause, not fail: remember the batch, and look for unfinished batches once Redis answers."""
        self._lost[batch_id] = why
        if self._closing:
            return
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.create_task(self._recover())

    async def stop(self) -> None:
        """Pause every running batch (each resumes on the next start) and wait for them."""
        self._closing = True
        if self._recovery is not None:
            self._recovery.cancel()
        for runner in list(self._runners.values()):
            runner.stop(StopReason.PAUSE, "service shutting down: resumes on the next start")
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # ---- submit ------------------------------------------------------------------------------

    async def submit(self, spec: BatchSpec, *, admin: bool) -> tuple[BatchRecord, bool]:
        """Accept a batch (or find the one its idempotency key names); (record, created)."""
        if self._closing:
            raise Unavailable("the batch service is shutting down: submit again in a moment")
        if spec.kind == "catalog" and spec.operation == "purge" and not admin:
            raise PermissionDenied(
                "purging the trash deletes files for good and needs the admin scope "
                "(the gateway grants it to admin keys; mediactl: --admin)",
                reason="ADMIN_SCOPE_REQUIRED",
            )
        if spec.idempotency_key:
            existing = await self.journal.client.get(f"{self.journal.prefix}b:idem:{spec.idempotency_key}")
            if existing is not None:
                return await self.journal.get(
                    existing.decode() if isinstance(existing, bytes) else existing
                ), False
        total = await check_selection(spec, self.deps.media_root, self.catalog, self.max_listed)
        await self.check_operation(spec)
        now = time.time_ns()
        record = BatchRecord(
            id=uuid.uuid4().hex[:16],
            state="queued",
            spec=spec.raw,
            kind=spec.kind,
            operation=spec.operation,
            atomic=spec.atomic,
            priority=spec.priority,
            max_failures=spec.max_failures,
            concurrency=spec.concurrency,
            item_deadline_s=spec.item_deadline_s,
            label=spec.label,
            total=total,
            created_ns=now,
        )
        first = event("accepted", total=total, atomic=spec.atomic)
        found = await self.journal.create(record, spec.idempotency_key, first)
        if found != record.id:  # another call with the same key won the race
            return await self.journal.get(found), False
        record.seq = 1
        self._schedule(record, spec, "")
        return record, True

    def _schedule(self, record: BatchRecord, spec: BatchSpec, resumed: str) -> None:
        """Run the batch, unless this process already runs it: one runner per batch at a time (two
        would clear each other's selection and record items twice)."""
        if record.id in self._tasks:
            return
        runner = Runner(self.deps, record, spec, self.make_worker(spec))
        self._runners[record.id] = runner
        task = asyncio.create_task(self._drive(runner, resumed, spec.idempotency_key))
        self._tasks[record.id] = task

    async def _drive(self, runner: Runner, resumed: str, idempotency_key: str) -> None:
        acquired = False
        try:
            # Start from the journal as it is now that this runner is registered, not from the record
            # read before: a runner of the same batch that ended in between wrote all it had to first.
            runner.record = await self.journal.get(runner.id)
            if runner.record.state in TERMINAL:
                return
            if runner.record.state in ("queued", "running", "paused") and not runner.record.cancel_requested:
                waiter = asyncio.create_task(self._batch_slots.acquire(runner.record.priority))
                stopped = asyncio.create_task(runner.stopped())
                await asyncio.wait({waiter, stopped}, return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
                if waiter.done() and not waiter.cancelled():
                    acquired = True
                else:
                    waiter.cancel()
                    try:
                        await waiter
                        acquired = True  # handed over as it was cancelled
                    except asyncio.CancelledError:
                        pass
            await runner.run(resumed)
            if runner.record.state in TERMINAL:
                await self.journal.expire_idempotency_key(idempotency_key)
        except (RedisConnectionError, RedisTimeoutError) as error:
            log.warning(
                "batch %s paused: Redis unreachable (%s); it resumes when Redis answers", runner.id, error
            )
            runner.redis_lost = runner.redis_lost or str(error)
            runner.stop(StopReason.PAUSE, "Redis unreachable")  # drops the work still in flight
        except Exception:
            log.exception("batch %s stopped on an unexpected error; it resumes on the next start", runner.id)
        finally:
            if acquired:
                self._batch_slots.release()
            self._runners.pop(runner.id, None)
            self._tasks.pop(runner.id, None)
            if runner.redis_lost:
                self._resume_when_redis_answers(runner.id, runner.redis_lost)

    # ---- reads and cancel ----------------------------------------------------------------------

    async def get(self, batch_id: str) -> BatchRecord:
        """A batch's record."""
        _check_id(batch_id)
        return await self.journal.get(batch_id)

    async def list(self, states: Sequence[str], page_size: int, token: str) -> tuple[list[BatchRecord], str]:
        """Batches newest first."""
        if not 0 <= page_size <= 500:
            raise InvalidArgument(f"page_size must be 1-500 (got {page_size})", field="page_size")
        return await self.journal.list_batches(states, page_size or 50, token)

    async def cancel(self, batch_id: str, reason: str) -> BatchRecord:
        """Ask a batch to stop: an atomic one rolls back, a non-atomic one keeps what is done."""
        record = await self.get(batch_id)
        if record.state in TERMINAL:
            raise FailedPrecondition(f"batch {batch_id} already finished ({record.state}): nothing to cancel")
        if record.state in ("committing", "rolling_back"):
            raise FailedPrecondition(
                f"batch {batch_id} is {record.state.replace('_', ' ')}: too late to cancel"
            )
        why = reason.strip()[:500] or "no reason given"
        await self.journal.set_fields(batch_id, cancel_requested=why)
        runner = self._runners.get(batch_id)
        if runner is not None:
            runner.stop(StopReason.CANCEL, why)
        return await self.journal.get(batch_id)

    async def events(self, batch_id: str, after: int) -> AsyncIterator[tuple[int, dict[str, Any]]]:
        """A batch's events after a sequence number, then new ones until it finishes."""
        _check_id(batch_id)
        async for item in self.journal.events(batch_id, after):
            yield item


def _check_id(batch_id: str) -> None:
    if not batch_id or len(batch_id) > 64 or not all(c.isalnum() or c in "-_" for c in batch_id):
        raise InvalidArgument(f"batch_id {batch_id[:80]!r} is not a batch id", field="batch_id")
