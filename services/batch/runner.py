"""Runs one batch from wherever its journal says it is: resolve the selection, work through the
items not yet recorded (a bounded window in flight, never the whole selection in memory), then
commit or roll back (atomic) or finish (non-atomic).

Every step is journaled before it counts: an item is done when its outcome, its catalog change
(or staged change) and its event are in Redis together (one script). A runner stopped at any
point (crash, pause, cancel) can be started again on the same batch and carries on from there.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.batch.catalog import OutputRef, index_members, item_id
from services.batch.catalog_actions import remove_file
from services.batch.catalog_store import CatalogStore, Stored
from services.batch.changes import Change, derive
from services.batch.config import Execution, Limits
from services.batch.journal import Journal, Recorded
from services.batch.model import BatchRecord, BatchSpec, event
from services.batch.selection import MediaRoot, resolve
from services.batch.slots import PrioritySlots
from services.batch.staging import Staging
from services.batch.work import Entry, ItemFailure, Outcome, UnitContext, Worker
from services.runtime.errors import FailedPrecondition

__all__ = ["Deps", "Runner", "StopReason"]

log = logging.getLogger("mediasuite.batch.runner")

_PAGE = 1024  # selection entries read at a time (a multiple of 8: bits are read by the byte)
_CONFLICT_ROUNDS = 20


class StopReason:
    """Why a runner stops early."""

    CANCEL = "cancel"
    PAUSE = "pause"
    FAILURES = "failures"


@dataclass
class Deps:
    """What every runner shares."""

    journal: Journal
    catalog: CatalogStore
    staging: Staging
    media_root: MediaRoot
    slots: PrioritySlots
    execution: Execution
    limits: Limits
    on_catalog_change: Callable[[], Any]


def _output_json(output: OutputRef) -> dict[str, Any]:
    return {
        "content_key": output.content_key,
        "stored_path": output.stored_path,
        "media_type": output.media_type,
        "size_bytes": output.size_bytes,
        "width": output.width,
        "height": output.height,
    }


class Runner:
    """One batch's execution."""

    def __init__(self, deps: Deps, record: BatchRecord, spec: BatchSpec, worker: Worker) -> None:
        self.deps = deps
        self.record = record
        self.spec = spec
        self.worker = worker
        self.stop_reason = ""
        self.stop_detail = ""
        self._stop = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._window = asyncio.Semaphore(record.concurrency)
        self._samples: collections.deque[tuple[float, int]] = collections.deque(maxlen=64)
        self._changed = asyncio.Event()
        self._mode = "stage" if record.atomic else "apply"
        self.redis_lost = ""  # why Redis stopped answering, when that paused the runner

    @property
    def id(self) -> str:
        """The batch id."""
        return self.record.id

    def stop(self, reason: str, detail: str = "") -> None:
        """Ask the runner to stop (cancel, pause or too many failures): nothing more is started.

        A pause drops the work in flight (it is redone on resume). A cancel or a failure lets it
        finish first: a file an item is still staging must land before a rollback removes the
        staging area, not after."""
        if not self.stop_reason or reason == StopReason.CANCEL:
            self.stop_reason, self.stop_detail = reason, detail
        self._stop.set()
        if reason == StopReason.PAUSE:
            for task in list(self._inflight):
                task.cancel()

    async def stopped(self) -> None:
        """Wait until the runner is asked to stop."""
        await self._stop.wait()

    # ---- the whole life --------------------------------------------------------------------

    async def run(self, resumed: str = "") -> None:
        """Take the batch from its journaled state to its end (or to a pause)."""
        state = self.record.state
        if state == "committing":
            await self._phase("committing", resumed or "resuming the commit")
            await self._commit()
            return
        if state == "rolling_back":
            await self._rollback(self.record.reason or resumed, resumed=resumed)
            return
        if self.record.cancel_requested:
            self.stop(StopReason.CANCEL, self.record.cancel_requested)
        if not self._stop.is_set():
            fields = {"state": "running"}
            if not self.record.started_ns:
                fields["started_ns"] = str(time.time_ns())
            self.record.state = "running"
            await self.deps.journal.emit(
                self.id, [event("phase", state="running", reason=resumed or "started")], **fields
            )
            if not self.record.resolved:
                await self._resolve()
            progress = asyncio.create_task(self._progress_loop())
            try:
                await self._work()
            finally:
                progress.cancel()
            await self._emit_progress()
        await self._conclude()

    async def _conclude(self) -> None:
        reason, detail = self.stop_reason, self.stop_detail
        if reason == StopReason.PAUSE:
            await self.deps.journal.emit(
                self.id, [event("phase", state="paused", reason=detail)], state="paused"
            )
            return
        fresh = await self.deps.journal.get(self.id)
        self.record = fresh
        if reason == StopReason.CANCEL:
            why = f"cancelled by caller: {detail}" if detail else "cancelled by caller"
            if self.record.atomic:
                await self._rollback(why, final="cancelled")
            else:
                await self._finish("cancelled", why)
            return
        if reason == StopReason.FAILURES or self._too_many_failures(fresh.failed):
            why = detail or f"max_failures {fresh.max_failures} exceeded ({fresh.failed} items failed)"
            if self.record.atomic:
                await self._rollback(why, final="failed")
            else:
                await self._finish("failed", why)
            return
        if self.record.atomic:
            await self._phase("committing", "every item done" if not fresh.failed else "within max_failures")
            await self._commit()
            return
        await self._finish("succeeded" if not fresh.failed else "completed_with_failures", "")

    # ---- selection ---------------------------------------------------------------------------

    async def _resolve(self) -> None:
        journal = self.deps.journal
        await journal.clear_selection(self.id)
        total = 0
        async for chunk in resolve(self.spec, self.deps.media_root, self.deps.catalog):
            total += len(chunk)
            if total > self.deps.limits.max_items:
                limit = self.deps.limits.max_items
                self.stop(StopReason.FAILURES, f"the selection has more than BATCH_MAX_ITEMS={limit} items")
                return
            await journal.append_selection(self.id, chunk)
            if self._stop.is_set():
                return
        self.record.total = total
        self.record.resolved = True
        await journal.emit(
            self.id,
            [event("progress", **self._counts(), rate=0.0, eta_s=-1.0)],
            total=str(total),
            resolved="1",
        )

    # ---- the items ---------------------------------------------------------------------------

    def _too_many_failures(self, failed: int) -> bool:
        return self.record.max_failures >= 0 and failed > self.record.max_failures

    async def _work(self) -> None:
        journal = self.deps.journal
        total = await journal.selection_length(self.id)
        is_paths = self.spec.kind == "import" or self.spec.selection.kind == "paths"
        unit: list[tuple[int, str]] = []
        for start in range(0, total, _PAGE):
            if self._stop.is_set():
                break
            values = await journal.selection_page(self.id, start, _PAGE)
            bits = await journal.recorded_bits(self.id, start, len(values))
            for offset, value in enumerate(values):
                if bits[offset]:
                    continue
                unit.append((start + offset, value))
                if len(unit) >= self.worker.unit_size:
                    await self._dispatch(unit, is_paths)
                    unit = []
                    if self._stop.is_set():
                        break
        if unit and not self._stop.is_set():
            await self._dispatch(unit, is_paths)
        while self._inflight:
            await asyncio.wait(set(self._inflight))

    async def _dispatch(self, unit: list[tuple[int, str]], is_paths: bool) -> None:
        await self._window.acquire()
        if self._stop.is_set():
            self._window.release()
            return
        task = asyncio.create_task(self._unit(unit, is_paths))
        self._inflight.add(task)
        task.add_done_callback(self._unit_done)

    def _unit_done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._window.release()
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            if isinstance(error, RedisConnectionError | RedisTimeoutError):
                # Not the batch's fault: pause it; the manager resumes it when Redis answers again.
                if not self.redis_lost:
                    log.warning("batch %s: Redis unreachable (%s): pausing", self.id, error)
                self.redis_lost = self.redis_lost or str(error)
                self.stop(StopReason.PAUSE, f"Redis unreachable ({error}): resumes when it answers")
                return
            log.error("batch %s: a unit failed unexpectedly: %r", self.id, error, exc_info=error)
            self.stop(StopReason.PAUSE, f"internal error: {error!r}; resumes on restart")

    async def _entries(self, unit: list[tuple[int, str]], is_paths: bool) -> list[Entry]:
        ids = [item_id(v) if is_paths else v for _, v in unit]
        stored = await self.deps.catalog.get_many(ids)
        entries = []
        for (index, value), cid, found in zip(unit, ids, stored, strict=True):
            item = found.item if found is not None else None
            path = value if is_paths else (item.path if item is not None else "")
            entries.append(Entry(index, path, cid, item))
        return entries

    async def _unit(self, unit: list[tuple[int, str]], is_paths: bool) -> None:
        slots = self.deps.slots
        await slots.acquire(self.record.priority)
        try:
            if self._stop.is_set():
                return
            entries = await self._entries(unit, is_paths)
            context = UnitContext(self.id, self.record.atomic, self.record.item_deadline_s, self.record.spec)
            outcomes = await self.worker.run(context, entries)
        finally:
            slots.release()
        await self._record(outcomes)

    async def _record(self, outcomes: list[Outcome]) -> None:
        """Journal the outcomes: derive each change from the catalog as it is now, retry on conflict."""
        journal = self.deps.journal
        for _ in range(_CONFLICT_ROUNDS):
            with_change = [o for o in outcomes if o.status == "done" and o.change is not None]
            stored = await self.deps.catalog.get_many([o.item_id for o in with_change])
            current = dict(zip([o.item_id for o in with_change], stored, strict=True))
            entries = [self._recorded(o, current.get(o.item_id)) for o in outcomes]
            conflicts = await journal.record(self.id, self._mode, entries)
            if not conflicts:
                break
        else:
            raise RuntimeError(f"catalog items {conflicts[:5]} kept changing under batch {self.id}")
        counted = collections.Counter(e.outcome for e in entries)
        self.record.done += counted["done"]
        self.record.failed += counted["failed"]
        self.record.skipped += counted["skipped"]
        self._samples.append((time.monotonic(), self._processed()))
        self._changed.set()
        if self._mode == "apply" and any(e.catalog_id for e in entries):
            self.deps.on_catalog_change()
        if self._too_many_failures(self.record.failed):
            self.stop(StopReason.FAILURES)

    def _recorded(self, outcome: Outcome, stored: Stored | None) -> Recorded:
        if outcome.status == "done" and outcome.change is not None:
            try:
                payload = self._payload(stored, outcome.change)
            except FailedPrecondition as error:
                failure = ItemFailure(9, "FAILED_PRECONDITION", error.message)
                outcome = Outcome(
                    outcome.index, outcome.path, outcome.item_id, "failed", failure=failure,
                    attempts=outcome.attempts,
                )  # fmt: skip
            else:
                return Recorded(
                    outcome.index,
                    "done",
                    self._event(outcome),
                    outcome.item_id,
                    stored.revision if stored is not None else 0,
                    payload,
                )
        return Recorded(outcome.index, outcome.status, self._event(outcome))

    def _payload(self, stored: Stored | None, change: Change) -> str:
        new = derive(
            stored.item if stored is not None else None,
            change,
            batch_id=self.id,
            history_kept=self.deps.limits.history_kept,
            max_tags=self.deps.limits.max_tags,
        )
        body: dict[str, Any] = {"c": change.to_json()}
        if new is None:
            body |= {"d": "", "x": []}
        else:
            body |= {"d": new.to_json(), "x": index_members(new)}
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)

    def _event(self, outcome: Outcome) -> dict[str, Any]:
        if outcome.status == "done":
            return event(
                "item_done",
                item_id=outcome.item_id,
                path=outcome.path,
                outputs=[_output_json(o) for o in outcome.outputs],
                duration_s=outcome.duration_s,
                attempts=outcome.attempts,
            )
        if outcome.status == "skipped":
            return event("item_skipped", item_id=outcome.item_id, path=outcome.path, reason=outcome.reason)
        failure = outcome.failure or ItemFailure(2, "UNKNOWN", "failed")
        return event(
            "item_failed",
            item_id=outcome.item_id if outcome.item_id and self.spec.kind != "import" else "",
            path=outcome.path,
            code=failure.code,
            code_name=failure.code_name,
            message=failure.message,
            field=failure.field,
            attempts=failure.attempts,
        )

    # ---- progress ----------------------------------------------------------------------------

    def _processed(self) -> int:
        return self.record.done + self.record.failed + self.record.skipped

    def _counts(self) -> dict[str, int]:
        r = self.record
        return {"done": r.done, "failed": r.failed, "skipped": r.skipped, "total": r.total}

    def _rate(self) -> tuple[float, float]:
        now = time.monotonic()
        recent = [(t, n) for t, n in self._samples if now - t <= 10.0]
        if len(recent) < 2 or recent[-1][0] <= recent[0][0]:
            return 0.0, -1.0
        rate = (recent[-1][1] - recent[0][1]) / (recent[-1][0] - recent[0][0])
        left = self.record.total - self._processed()
        return rate, (left / rate if rate > 0 and self.record.total >= 0 else -1.0)

    async def _emit_progress(self) -> None:
        rate, eta = self._rate()
        await self.deps.journal.emit(self.id, [event("progress", **self._counts(), rate=rate, eta_s=eta)])

    async def _progress_loop(self) -> None:
        interval = self.deps.execution.progress_interval_seconds
        while True:
            await self._changed.wait()
            self._changed.clear()
            await self._emit_progress()
            await asyncio.sleep(interval)

    # ---- endings -----------------------------------------------------------------------------

    async def _phase(self, state: str, reason: str) -> None:
        self.record.state = state
        await self.deps.journal.emit(self.id, [event("phase", state=state, reason=reason)], state=state)

    async def _commit(self) -> None:
        """Publish staged outputs, apply staged catalog changes in one step, remove purged files."""
        journal, staging = self.deps.journal, self.deps.staging
        published = await asyncio.to_thread(staging.publish, self.id)
        for _ in range(_CONFLICT_ROUNDS):
            conflicts = await journal.commit(self.id)
            if not conflicts:
                break
            await self._restage(conflicts)
        else:
            raise RuntimeError(f"catalog items {conflicts[:5]} kept changing under batch {self.id}")
        self.deps.on_catalog_change()
        async for _, payload in journal.staged_entries(self.id):
            if '"op":"purge"' in payload:
                change = Change.from_json(json.loads(payload)["c"])
                await asyncio.to_thread(remove_file, self.deps.media_root.real, change.path)
        fresh = await journal.get(self.id)
        self.record = fresh
        final = "succeeded" if not fresh.failed else "completed_with_failures"
        await self._finish(final, f"committed: {fresh.done} item(s) applied, {published} file(s) published")

    async def _restage(self, conflicts: list[str]) -> None:
        """Re-derive staged changes from the catalog as it is now; a change that no longer applies
        (the item was restored meanwhile, say) is dropped and the item left as it is."""
        journal = self.deps.journal
        payloads = await journal.staged(self.id, conflicts)
        stored = await self.deps.catalog.get_many(conflicts)
        fresh: dict[str, tuple[int, str]] = {}
        dropped: list[str] = []
        for cid, payload, current in zip(conflicts, payloads, stored, strict=True):
            if payload is None:
                continue
            change = Change.from_json(json.loads(payload)["c"])
            try:
                fresh[cid] = (current.revision if current is not None else 0, self._payload(current, change))
            except FailedPrecondition as error:
                log.warning("batch %s: change of %s dropped at commit: %s", self.id, cid, error.message)
                dropped.append(cid)
        await journal.restage(self.id, fresh, dropped)

    async def _rollback(self, reason: str, *, final: str = "", resumed: str = "") -> None:
        """Remove staged outputs and staged changes; the catalog is left exactly as it was."""
        journal = self.deps.journal
        if self.record.state != "rolling_back":
            self.record.state = "rolling_back"
            await journal.emit(
                self.id,
                [event("phase", state="rolling_back", reason=reason)],
                state="rolling_back",
                reason=reason,
                final=final,
            )
        elif resumed:
            await journal.emit(self.id, [event("phase", state="rolling_back", reason=resumed)])
        await asyncio.to_thread(self.deps.staging.discard, self.id)
        await journal.drop_stage(self.id)
        stored_final = await journal.client.hget(journal.key(self.id), "final")
        if isinstance(stored_final, bytes):
            stored_final = stored_final.decode()
        raw_final = final or stored_final or "failed"
        self.record = await journal.get(self.id)
        await self._finish(raw_final, f"rolled back: {reason}")

    async def _finish(self, state: str, reason: str) -> None:
        """The final phase and the finished event (with the final batch), then retention."""
        journal = self.deps.journal
        record = await journal.get(self.id)
        record.state = state
        record.finished_ns = time.time_ns()
        if state in ("failed", "cancelled") and not record.reason:
            record.reason = reason
        record.seq += 2
        events = [
            event("phase", state=state, reason=reason or state),
            event("finished", batch=record.snapshot()),
        ]
        await journal.emit(
            self.id, events, state=state, finished_ns=str(record.finished_ns), reason=record.reason
        )
        await journal.finish(self.id)
        self.record = record
