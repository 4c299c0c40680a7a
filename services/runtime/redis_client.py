"""How the suite's processes talk to Redis through redis-py: the batch process, the monitor's probe
and the cache backend's pool."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = ["close_client", "reconnect_once", "redis_client"]


class _ReconnectOnce(Retry):
    """One policy object for every connection of a client (redis-py copies the policy into each
    connection; this one hands itself out instead), so closing the client can switch it off."""

    def __deepcopy__(self, memo: dict[int, Any]) -> _ReconnectOnce:
        return self

    def __copy__(self) -> _ReconnectOnce:
        return self


def reconnect_once() -> Retry:
    """redis-py's retry policy for our pools: a command that lost its connection is sent once
    more, at once, on a fresh connection; nothing else is retried.

    A connection pooled before Redis restarted is dead, and the pool does not always notice before
    handing it out: the command then fails with "Connection closed by server" although Redis
    answers. Such a command never reached the new server. Timeouts are never retried: a command
    that timed out may have run. A Redis that is really down refuses the second connection too,
    which costs one more refused connect, not a wait. :func:`close_client` switches it off first,
    so a command cut off by the close is not sent again on a connection nobody would close.
    """
    return _ReconnectOnce(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def redis_client(url: str, **options: Any) -> aioredis.Redis:
    """An asyncio client for ``url`` that reconnects once (``options`` go to redis-py: timeouts,
    health checks)."""
    return aioredis.Redis.from_url(url, retry=reconnect_once(), **options)


async def close_client(client: aioredis.Redis) -> None:
    """Close ``client`` and its pool, including connections in use; a command they were running
    fails (it is not retried)."""
    retry = client.get_retry()
    if retry is not None:
        retry.update_retries(0)
    await client.aclose()
    await client.connection_pool.disconnect()
