"""The Redis backend: pooled redis-py asyncio connections, short timeouts, one round trip per call.

Keys live under a configurable prefix ``P`` so several suites (or tests) share one Redis::

    P e:<namespace>:<key>     the entry blob (a string with PX expiry)
    P l:<namespace>:<key>     the lease token of a missing key (set only when free)
    P s:<namespace>:<path>    the keys made from one source file (a set, for invalidation by source)

Reads (GET, MGET) and small writes are pipelined on one dedicated connection
(``redis_pipeline.py``, measured much cheaper than a redis-py call); everything else goes through
the redis-py pool. Connection errors
and timeouts surface as :class:`BackendDown`, never retried here: the failover layer decides.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from opentelemetry import trace
from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from services.cache.backend import BackendDown, BackendKind, Usage, Write
from services.cache.entries import HEADER, head_sizes
from services.cache.globs import escape
from services.cache.redis_pipeline import PipelinedConnection
from services.runtime.errors import Unavailable
from services.runtime.redis_client import POOL_OPTIONS

__all__ = ["RedisBackend"]

log = logging.getLogger("mediasuite.cache.redis")

T = TypeVar("T")

_DOWN = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError, TimeoutError)
_TIMEOUTS = (redis_errors.TimeoutError, TimeoutError)
_SCAN_COUNT = 1000
# Writes up to this many bytes in all go over the pipelined connection; larger ones use the pool,
# so a big value never delays the reads queued behind it.
PIPELINED_WRITE_BYTES = 64 * 1024
_DELETE_CHUNK = 500

# Delete KEYS[1] only if its first bytes are still ARGV[1] (nobody replaced the stale entry).
_DELETE_IF_HEAD = """
if redis.call('GETRANGE', KEYS[1], 0, string.len(ARGV[1]) - 1) == ARGV[1] then
  return redis.call('UNLINK', KEYS[1])
end
return 0
"""
# Take the lease KEYS[1] for token ARGV[1] (PX ARGV[2]) unless another token holds it. Taking it
# again with the same token succeeds, so a call retried after a timeout (its first SET may have
# landed) still knows it holds the lease.
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  return 1
end
return 0
"""
# Delete KEYS[1] only if it holds ARGV[1] (the caller's lease token).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisBackend:
    """Entries in Redis under ``prefix``."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "mediasuite:cache:",
        timeout: float = 0.25,
        pool_size: int = 32,
        index_ttl_ms: Callable[[str], int] = lambda namespace: 86_400_000,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self._glob_prefix = escape(prefix)
        self._index_ttl_ms = index_ttl_ms
        self._pool = BlockingConnectionPool.from_url(
            url,
            max_connections=pool_size,
            timeout=max(timeout * 4, 0.5),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            **POOL_OPTIONS,
        )
        self._client = Redis(connection_pool=self._pool)
        self._pipe = PipelinedConnection(url, timeout, tracer)
        self._delete_if_head = self._client.register_script(_DELETE_IF_HEAD)
        self._release = self._client.register_script(_RELEASE)
        self._acquire = self._client.register_script(_ACQUIRE)

    @property
    def kind(self) -> BackendKind:
        """Always REDIS."""
        return BackendKind.REDIS

    def entry_key(self, namespace: str, key: str) -> str:
        """The Redis key of an entry."""
        return f"{self.prefix}e:{namespace}:{key}"

    def _lease_key(self, namespace: str, key: str) -> str:
        return f"{self.prefix}l:{namespace}:{key}"

    def _source_key(self, namespace: str, path: str) -> str:
        return f"{self.prefix}s:{namespace}:{path}"

    async def _call(self, operation: Awaitable[T]) -> T:
        try:
            return await operation
        except (*_DOWN, redis_errors.ResponseError) as error:
            raise _failure(error) from error

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        try:
            yield
        except (*_DOWN, redis_errors.ResponseError) as error:
            raise _failure(error) from error

    # -- reads -----------------------------------------------------------------------------

    async def get(self, namespace: str, key: str) -> bytes | None:
        """The blob under key (one pipelined GET)."""
        return await self._pipe.get(f"{self.prefix}e:{namespace}:{key}")

    async def get_many(self, namespace: str, keys: Sequence[str]) -> list[bytes | None]:
        """One MGET."""
        if not keys:
            return []
        prefix = f"{self.prefix}e:{namespace}:"
        return await self._pipe.mget([prefix + key for key in keys])

    # -- writes ----------------------------------------------------------------------------

    async def set_many(self, namespace: str, writes: Sequence[Write]) -> list[bool]:
        """One pipeline: SET PX (NX when asked) per entry, plus the source index."""
        if not writes:
            return []
        if sum(len(w.blob) for w in writes) <= PIPELINED_WRITE_BYTES:
            return await self._set_pipelined(namespace, writes)
        positions = []
        async with self._guard():
            pipe = self._client.pipeline(transaction=False)
            for write in writes:
                positions.append(len(pipe))
                pipe.set(
                    self.entry_key(namespace, write.key), write.blob, px=write.ttl_ms, nx=write.only_if_absent
                )
                if write.source is not None:
                    index = self._source_key(namespace, write.source)
                    index_ttl = max(write.ttl_ms, self._index_ttl_ms(namespace))
                    pipe.sadd(index, write.key)
                    pipe.pexpire(index, index_ttl, nx=True)
                    pipe.pexpire(index, index_ttl, gt=True)
            results = await pipe.execute()
        return [bool(results[i]) for i in positions]

    async def _set_pipelined(self, namespace: str, writes: Sequence[Write]) -> list[bool]:
        commands: list[tuple[bytes | str | int, ...]] = []
        positions = []
        for write in writes:
            positions.append(len(commands))
            command: tuple[bytes | str | int, ...] = (
                b"SET",
                self.entry_key(namespace, write.key),
                write.blob,
                b"PX",
                write.ttl_ms,
            )
            commands.append((*command, b"NX") if write.only_if_absent else command)
            if write.source is not None:
                index = self._source_key(namespace, write.source)
                index_ttl = max(write.ttl_ms, self._index_ttl_ms(namespace))
                commands.append((b"SADD", index, write.key))
                commands.append((b"PEXPIRE", index, index_ttl, b"NX"))
                commands.append((b"PEXPIRE", index, index_ttl, b"GT"))
        replies = await self._pipe.execute(commands)
        return [replies[i] is not None for i in positions]

    async def delete_many(self, namespace: str, keys: Sequence[str]) -> int:
        """One UNLINK."""
        if not keys:
            return 0
        full = list(dict.fromkeys(self.entry_key(namespace, key) for key in keys))
        deleted: int = await self._call(self._client.unlink(*full))
        return deleted

    async def delete_if_unchanged(self, namespace: str, key: str, head: bytes) -> bool:
        """Compare-and-delete in one script call."""
        result = await self._call(self._delete_if_head(keys=[self.entry_key(namespace, key)], args=[head]))
        return bool(result)

    async def delete_matching(self, namespace: str, glob: str) -> int:
        """SCAN MATCH (never KEYS) and UNLINK in chunks; each step is one short command."""
        match = f"{self._glob_prefix}e:{escape(namespace)}:{glob}"
        deleted = 0
        batch: list[bytes] = []
        async with self._guard():
            async for found in self._client.scan_iter(match=match, count=_SCAN_COUNT):
                batch.append(found)
                if len(batch) >= _DELETE_CHUNK:
                    deleted += await self._client.unlink(*batch)
                    batch.clear()
            if batch:
                deleted += await self._client.unlink(*batch)
        return deleted

    async def delete_by_source(self, namespace: str, path: str) -> int:
        """SSCAN the source's index, check each entry's recorded path, UNLINK the matches."""
        index = self._source_key(namespace, path)
        want = path.encode()
        head_len = HEADER.size + len(want)
        deleted = 0
        members: list[bytes] = []

        async def flush() -> int:
            pipe = self._client.pipeline(transaction=False)
            for member in members:
                pipe.getrange(self.entry_key(namespace, member.decode()), 0, head_len - 1)
            heads = await pipe.execute()
            doomed = [
                self.entry_key(namespace, member.decode())
                for member, head in zip(members, heads, strict=True)
                if _has_source(head, want)
            ]
            count = 0
            if doomed:
                count = int(await self._client.unlink(*doomed))
            await self._client.srem(index, *members)
            members.clear()
            return count

        async with self._guard():
            async for member in self._client.sscan_iter(index, count=_SCAN_COUNT):
                members.append(member)
                if len(members) >= _DELETE_CHUNK:
                    deleted += await flush()
            if members:
                deleted += await flush()
        return deleted

    # -- leases ----------------------------------------------------------------------------

    async def acquire_lease(self, namespace: str, key: str, token: str, ttl_ms: int) -> bool:
        """SET PX if free (or already held by this token), in one script call."""
        taken = await self._call(self._acquire(keys=[self._lease_key(namespace, key)], args=[token, ttl_ms]))
        return bool(taken)

    async def release_lease(self, namespace: str, key: str, token: str) -> bool:
        """Compare-and-delete in one script call."""
        return bool(await self._call(self._release(keys=[self._lease_key(namespace, key)], args=[token])))

    async def lease_ttl_ms(self, namespace: str, key: str) -> int | None:
        """PTTL of the lease key."""
        left = int(await self._call(self._client.pttl(self._lease_key(namespace, key))))
        return left if left > 0 else None

    # -- accounting ------------------------------------------------------------------------

    async def usage(self, namespace: str) -> Usage:
        """Counted by SCAN, reading only each entry's header (GETRANGE) and length (STRLEN)."""
        entries = raw = stored = 0
        keys: list[bytes] = []

        async def count() -> None:
            nonlocal entries, raw, stored
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                pipe.getrange(key, 0, HEADER.size - 1)
                pipe.strlen(key)
            results = await pipe.execute()
            for head, length in zip(results[::2], results[1::2], strict=True):
                if not head:
                    continue  # expired between SCAN and GETRANGE
                sizes = head_sizes(head)
                if sizes is None:
                    continue
                entries += 1
                raw += sizes[0]
                stored += int(length) - sizes[1]
            keys.clear()

        match = f"{self._glob_prefix}e:{escape(namespace)}:*"
        async with self._guard():
            async for found in self._client.scan_iter(match=match, count=_SCAN_COUNT):
                keys.append(found)
                if len(keys) >= _DELETE_CHUNK:
                    await count()
            if keys:
                await count()
        return Usage(entries, raw, stored)

    def evictions(self, namespace: str) -> int:
        """Redis evicts by its own policy; the cache does not count those."""
        return 0

    async def ping(self) -> None:
        """PING (BackendDown when it does not answer)."""
        await self._call(self._client.ping())

    async def execute(self, *args: Any) -> Any:
        """Run one raw command (for tests and maintenance)."""
        return await self._call(self._client.execute_command(*args))  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._pipe.close()
        await self._client.aclose()
        await self._pool.disconnect()


def _failure(error: BaseException) -> BackendDown | Unavailable:
    """What a redis-py error means to the failover layer: an error reply is Unavailable (Redis
    answered); anything else is BackendDown, marked when it was a timeout."""
    if isinstance(error, redis_errors.ResponseError):
        return Unavailable(f"redis refused the operation: {error}")
    return BackendDown(f"redis did not answer: {error!r}", timed_out=isinstance(error, _TIMEOUTS))


def _has_source(head: bytes | None, path: bytes) -> bool:
    if not head or len(head) < HEADER.size:
        return False
    fields = HEADER.unpack_from(head)
    path_len = fields[8]
    return bool(path_len == len(path) and head[HEADER.size : HEADER.size + path_len] == path)
