"""The suite's redis-py client on a real redis-server that restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.runtime.redis_client import redis_client
from tests.support.redis import private_redis


async def test_a_restart_between_two_commands_costs_nothing(tmp_path: Path) -> None:
    """Connections pooled before the restart are dead: each is replaced before it is used (plain
    redis-py 8.1 hands them out, and the first commands fail "Connection closed by server")."""
    with private_redis(tmp_path, persistent=True) as server:
        client = redis_client(server.url, socket_timeout=5)
        try:
            await asyncio.gather(*(client.set(f"k{i}", i) for i in range(6)))  # six pooled connections
            await asyncio.to_thread(server.restart)
            for _ in range(3):
                assert await asyncio.gather(*(client.get(f"k{i}") for i in range(6))) == [
                    str(i).encode() for i in range(6)
                ]
        finally:
            await client.aclose()
