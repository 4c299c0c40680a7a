"""Redis restarted under the batch service: the first calls after it answers again succeed.

The connections pooled before the restart are dead; a call that drew one used to fail with
UNAVAILABLE "Connection closed by server" although Redis was answering.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from mediasuite.batch.v1 import batch_service_pb2 as bpb
from tests.service.batch.conftest import Factory
from tests.support.batch import IMPORT_LIBRARY, finished, make_tree, run_batch
from tests.support.redis import private_redis

CALLERS = 8


async def test_calls_right_after_a_redis_restart_succeed(batch_suite: Factory, tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    with private_redis(tmp_path / "redis", persistent=True) as server:
        async with batch_suite(REDIS_URL=server.url) as suite:
            make_tree(suite.media, images=4)
            batch_id = finished(await run_batch(suite.batch, IMPORT_LIBRARY)).id

            async def get_all() -> list[bpb.GetBatchResponse]:
                request = bpb.GetBatchRequest(batch_id=batch_id)
                return list(
                    await asyncio.gather(*(suite.batch.GetBatch(request, timeout=10) for _ in range(CALLERS)))
                )

            await get_all()  # several connections in the pool
            # In a thread, so the event loop runs meanwhile, as it does while a real Redis restarts.
            await asyncio.to_thread(server.kill)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await suite.batch.GetBatch(bpb.GetBatchRequest(batch_id=batch_id), timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
            await asyncio.to_thread(server.start)

            replies = await get_all()
            assert [r.batch.state for r in replies] == [bpb.BATCH_STATE_SUCCEEDED] * CALLERS
            assert {r.batch.total for r in replies} == {4}
