"""The monitor's Redis probe on a real redis-server that is killed and started again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.monitor.probes import RedisProbe
from tests.support.redis import private_redis


async def test_a_probe_sees_redis_down_then_up_again(tmp_path: Path) -> None:
    with private_redis(tmp_path) as server:
        probe = RedisProbe(server.url)
        try:
            assert await probe.check(2.0) == (True, "PONG")
            server.kill()
            up, detail = await probe.check(2.0)
            assert not up
            assert "ConnectionError" in detail, detail
            server.start()
            assert await probe.check(2.0) == (True, "PONG")
        finally:
            await probe.close()


async def test_redis_restarted_between_two_probes_is_not_reported_down(tmp_path: Path) -> None:
    # The connection pooled before the restart is dead; the next probe must not report that.
    with private_redis(tmp_path) as server:
        probe = RedisProbe(server.url)
        try:
            assert await probe.check(2.0) == (True, "PONG")
            await asyncio.to_thread(server.restart)
            assert await probe.check(2.0) == (True, "PONG")
        finally:
            await probe.close()
