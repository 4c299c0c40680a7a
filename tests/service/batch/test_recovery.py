"""Recovery (at start, and again when Redis answers after an outage) resumes the unfinished batches
it lists in Redis; a batch submitted while it runs is in that list too, and must still have exactly
one runner in the process."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mediasuite.batch.v1 import batch_service_pb2 as bpb
from services.batch.catalog import item_id
from tests.service.batch.conftest import Factory
from tests.support.batch import IMPORT_LIBRARY, finished, make_tree, run_batch


async def test_a_batch_submitted_while_recovery_lists_it_runs_once(
    batch_suite: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The two journal calls are the real ones (real Redis); the wrappers only pin the interleaving
    # that otherwise happens now and then (a first submit right after the service starts): recovery
    # reads the active batches after the new one is created, and before submit has scheduled it.
    async with batch_suite() as suite:
        paths = make_tree(suite.media, images=10)
        manager = suite.parts.manager
        journal = manager.journal
        create, active_ids = journal.create, journal.active_ids
        created, listed = asyncio.Event(), asyncio.Event()

        async def create_then_wait_for_the_listing(*args: Any) -> str:
            found = await create(*args)
            created.set()
            await listed.wait()
            return found

        async def list_once_created() -> list[str]:
            await created.wait()
            ids = await active_ids()
            listed.set()
            return ids

        monkeypatch.setattr(journal, "create", create_then_wait_for_the_listing)
        monkeypatch.setattr(journal, "active_ids", list_once_created)
        await manager.start()  # recovery, as at start or once Redis answers again
        events = await run_batch(suite.batch, IMPORT_LIBRARY)
        assert listed.is_set()

        started = [e for e in events if e.WhichOneof("event") == "phase" and e.phase.reason == "started"]
        assert len(started) == 1, f"{len(started)} runners started the batch"
        batch = finished(events)
        assert (batch.state, batch.total, batch.done) == (bpb.BATCH_STATE_SUCCEEDED, 10, 10)
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
        found = await suite.parts.catalog.get_many([item_id(p) for p in paths])
        assert all(f is not None for f in found)
