"""The pipelined read path: replies reach the right callers, and a dead or frozen Redis fails
pending reads quickly instead of hanging them. Real redis-server processes."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
import redis

from services.cache.backend import BackendDown
from services.cache.redis_pipeline import PipelinedConnection
from tests.support.redis import private_redis

pytestmark = pytest.mark.fault


async def test_concurrent_reads_get_their_own_replies(tmp_path: Path) -> None:
    with private_redis(tmp_path) as server:
        client = redis.Redis.from_url(server.url)
        client.mset({f"k{i}": f"v{i}" for i in range(300)})
        client.close()
        reads = PipelinedConnection(server.url, timeout=2.0)
        try:
            singles = [reads.get(f"k{i}") for i in range(300)]
            batches = [reads.mget([f"k{i}", "missing", f"k{299 - i}"]) for i in range(100)]
            results = await asyncio.gather(*singles, *batches)
        finally:
            await reads.close()
    assert results[:300] == [f"v{i}".encode() for i in range(300)]
    assert results[300:] == [[f"v{i}".encode(), None, f"v{299 - i}".encode()] for i in range(100)]


async def test_database_from_the_url(tmp_path: Path) -> None:
    with private_redis(tmp_path) as server:
        client = redis.Redis(port=server.port, db=3)
        client.set("k", b"in db 3")
        client.close()
        reads = PipelinedConnection(server.url.replace("/0", "/3"), timeout=2.0)
        try:
            assert await reads.get("k") == b"in db 3"
        finally:
            await reads.close()


async def test_frozen_redis_fails_pending_reads_then_recovers(tmp_path: Path) -> None:
    with private_redis(tmp_path) as server:
        reads = PipelinedConnection(server.url, timeout=0.2)
        try:
            assert await reads.get("k") is None
            assert server.popen is not None
            server.popen.send_signal(signal.SIGSTOP)
            try:
                outcomes = await asyncio.gather(*(reads.get("k") for _ in range(20)), return_exceptions=True)
            finally:
                server.popen.send_signal(signal.SIGCONT)
            assert all(isinstance(o, BackendDown) for o in outcomes)
            assert "no reply from redis within 0.2s" in str(outcomes[0])
            assert await reads.get("k") is None  # a new connection
        finally:
            await reads.close()


async def test_killed_redis_fails_reads_and_reconnects_after_restart(tmp_path: Path) -> None:
    with private_redis(tmp_path) as server:
        reads = PipelinedConnection(server.url, timeout=0.5)
        try:
            assert await reads.get("k") is None
            server.kill()
            with pytest.raises(BackendDown):
                await reads.get("k")
            with pytest.raises(BackendDown):  # refused while down
                await reads.get("k")
            server.start()
            assert await reads.get("k") is None
        finally:
            await reads.close()
