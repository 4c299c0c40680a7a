"""The suite's redis-py client: once more on a lost connection, never after its own close."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError

from services.runtime.redis_client import close_client, redis_client
from tests.support.redis import SHARED_URL, private_redis


def _connections_named(name: str) -> int:
    client = redis.Redis.from_url(SHARED_URL)
    try:
        return sum(1 for c in client.client_list() if c.get("name") == name)
    finally:
        client.close()


async def test_a_restart_between_two_commands_costs_nothing(tmp_path: Path) -> None:
    with private_redis(tmp_path, persistent=True) as server:
        client = redis_client(server.url, socket_timeout=5)
        try:
            await asyncio.gather(*(client.set(f"k{i}", i) for i in range(6)))  # six pooled connections
            server.kill()
            server.start()
            assert await asyncio.gather(*(client.get(f"k{i}") for i in range(6))) == [
                str(i).encode() for i in range(6)
            ]
        finally:
            await close_client(client)


async def test_a_command_cut_off_by_close_is_not_sent_again() -> None:
    name = f"mstest-close-{uuid.uuid4().hex[:8]}"
    client = redis_client(SHARED_URL, socket_timeout=5, client_name=name)

    async def read() -> object:
        return await client.xread({f"mstest:{name}:none": "0-0"}, block=2000)

    blocked = asyncio.create_task(read())
    await asyncio.sleep(0.2)
    assert _connections_named(name) == 1
    await close_client(client)
    with pytest.raises(RedisConnectionError):
        await blocked
    assert _connections_named(name) == 0, "the blocked read reconnected after the client was closed"
