"""How the suite's processes connect to Redis through redis-py: the batch process, the monitor's
probe and the cache backend's pool."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.maint_notifications import MaintNotificationsConfig

__all__ = ["POOL_OPTIONS", "redis_client"]

#: Options for every redis-py pool of the suite. Maintenance notifications (push messages of
#: managed Redis services about planned failovers) are off: redis-py 8.1 turns them on by default
#: over RESP3, and while they are on its pool skips the check that replaces a connection the
#: server has closed (redis/redis-py#4252). A connection pooled before Redis restarted was then
#: handed out dead, and the first command after the restart failed with "Connection closed by
#: server" although Redis answered. Commands are never retried: one whose reply was lost may
#: have run, and several of ours (appends, event scripts) must run once.
POOL_OPTIONS: dict[str, Any] = {"maint_notifications_config": MaintNotificationsConfig(enabled=False)}


def redis_client(url: str, **options: Any) -> aioredis.Redis:
    """An asyncio client for ``url`` (``options`` go to redis-py: timeouts, health checks)."""
    return aioredis.Redis.from_url(url, **POOL_OPTIONS, **options)
