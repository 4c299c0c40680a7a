"""Redis first, memory when Redis stops answering, and back to Redis by itself.

The first operation that finds Redis down opens the circuit: that operation and every one after it
is served by the memory backend at once, so no call fails or hangs on a dead Redis. Down means a
refused or lost connection, or no answer within the short command timeout and none to a PING after
it (so a stall of this process, such as CPU throttling, does not count: the operation runs again on
Redis). A Redis that goes silent costs the calls then in flight about twice the timeout (plus a
wait for a pooled connection for the one shared PING). A background task pings Redis with
exponential backoff; when Redis answers, what changed during the outage is replayed (invalidations,
then each touched key's final state written back or deleted), the memory backend is emptied, and
Redis serves again. If more keys changed than the journal may hold, every namespace is cleared in
Redis instead, so nothing stale survives the outage.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from services.cache.backend import BackendDown, BackendKind, BackendState, Usage, Write
from services.cache.memory import MemoryBackend
from services.cache.redis_backend import RedisBackend
from services.runtime.errors import Unavailable

__all__ = ["FailoverBackend"]

log = logging.getLogger("mediasuite.cache.failover")

_REPLAY_CHUNK = 500

T = TypeVar("T")


@dataclass(frozen=True)
class _Invalidation:
    namespace: str
    glob: str | None
    source: str | None


class FailoverBackend:
    """A Redis backend with a memory fallback behind a circuit breaker."""

    def __init__(
        self,
        primary: RedisBackend,
        fallback: MemoryBackend,
        namespaces: Sequence[str],
        *,
        retry_min: float = 0.1,
        retry_max: float = 5.0,
        journal_limit: int = 100_000,
        on_change: Callable[[BackendState], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self._namespaces = list(namespaces)
        self._retry_min = retry_min
        self._retry_max = retry_max
        self._journal_limit = journal_limit
        self._on_change = on_change
        self._clock = clock
        self._degraded = False
        self._reason = ""
        self._since = clock()
        self._failovers = 0
        self._keys: dict[str, set[str]] = {}
        self._journal_size = 0
        self._invalidations: list[_Invalidation] = []
        self._overflow = False
        self._recovery: asyncio.Task[None] | None = None
        self._confirming: asyncio.Task[None] | None = None
        self._closed = False

    # -- state -----------------------------------------------------------------------------

    @property
    def kind(self) -> BackendKind:
        """The backend answering now."""
        return BackendKind.MEMORY if self._degraded else BackendKind.REDIS

    @property
    def degraded(self) -> bool:
        """True while memory serves because Redis does not answer."""
        return self._degraded

    def state(self) -> BackendState:
        """The state for GetStats and health."""
        return BackendState(
            self.kind, BackendKind.REDIS, self._degraded, self._reason, self._since, self._failovers
        )

    async def start(self) -> None:
        """Check Redis at start (a timeout confirmed by one more PING, as for every call); serve
        from memory (and keep trying) when it does not answer."""
        try:
            await self._redis(self.primary.ping)
        except BackendDown as error:
            self._trip(error)
        except Unavailable as error:  # an error reply (LOADING, BUSY): not serving yet
            self._trip(BackendDown(str(error)))

    def _trip(self, error: BackendDown) -> None:
        if self._degraded or self._closed:
            return
        self._degraded = True
        self._reason = f"redis unreachable at {_redact(self.primary.url)}: {error}"
        self._since = self._clock()
        self._failovers += 1
        log.warning(
            "cache degraded: %s; serving from memory and retrying Redis with backoff",
            self._reason,
            extra={"fields": {"degraded": True, "failovers": self._failovers}},
        )
        self._recovery = asyncio.get_running_loop().create_task(self._recover())
        self._notify()

    def _notify(self) -> None:
        if self._on_change is not None:
            self._on_change(self.state())

    async def _recover(self) -> None:
        delay = self._retry_min
        attempts = 0
        while not self._closed:
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311 (jitter, not crypto)
            attempts += 1
            try:
                await self.primary.ping()
                await self._replay()
            except (BackendDown, Unavailable) as error:
                delay = min(delay * 2, self._retry_max)
                self._reason = f"redis unreachable at {_redact(self.primary.url)}: {error}"
                log.debug("redis still unreachable (attempt %d): %s", attempts, error)
                continue
            # The journal is empty and nothing awaited since it was checked: switch now.
            self._degraded = False
            self._reason = ""
            self._since = self._clock()
            self.fallback.clear()
            log.warning(
                "cache recovered: Redis answers again after %d attempt(s); serving from Redis",
                attempts,
                extra={"fields": {"degraded": False, "failovers": self._failovers}},
            )
            self._notify()
            return

    async def _replay(self) -> None:
        """Apply to Redis what changed in memory during the outage, until nothing is left."""
        while self._keys or self._invalidations or self._overflow:
            keys, self._keys = self._keys, {}
            invalidations, self._invalidations = self._invalidations, []
            overflow, self._overflow = self._overflow, False
            self._journal_size = 0
            try:
                if overflow:
                    for namespace in self._namespaces:
                        await self.primary.delete_matching(namespace, "*")
                for item in invalidations:
                    if item.glob is not None:
                        await self.primary.delete_matching(item.namespace, item.glob)
                    elif item.source is not None:
                        await self.primary.delete_by_source(item.namespace, item.source)
                for namespace, touched in keys.items():
                    await self._write_back(namespace, list(touched))
            except BaseException:
                # Put it back: replaying is idempotent, the next attempt starts over.
                self._invalidations[:0] = invalidations
                for namespace, touched in keys.items():
                    self._keys.setdefault(namespace, set()).update(touched)
                self._journal_size = sum(len(k) for k in self._keys.values()) + len(self._invalidations)
                self._overflow |= overflow
                raise

    async def _write_back(self, namespace: str, keys: list[str]) -> None:
        for start in range(0, len(keys), _REPLAY_CHUNK):
            chunk = keys[start : start + _REPLAY_CHUNK]
            writes = []
            gone = []
            for key in chunk:
                stored = self.fallback.peek(namespace, key)
                if stored is None:
                    gone.append(key)
                else:
                    writes.append(
                        Write(
                            key,
                            stored.blob,
                            stored.ttl_ms,
                            stored.raw_size,
                            stored.stored_size,
                            stored.source,
                        )
                    )
            if writes:
                await self.primary.set_many(namespace, writes)
            if gone:
                await self.primary.delete_many(namespace, gone)

    def _journal_keys(self, namespace: str, keys: Sequence[str]) -> None:
        if self._overflow:
            return
        touched = self._keys.setdefault(namespace, set())
        before = len(touched)
        touched.update(keys)
        self._journal_size += len(touched) - before
        self._check_journal()

    def _journal_invalidation(self, item: _Invalidation) -> None:
        if self._overflow:
            return
        self._invalidations.append(item)
        self._journal_size += 1
        self._check_journal()

    def _check_journal(self) -> None:
        if self._journal_size > self._journal_limit:
            log.warning(
                "more than %d changes during the Redis outage: every namespace will be cleared in "
                "Redis on recovery (that is CACHE_FAILOVER_JOURNAL: raise it to keep more)",
                self._journal_limit,
            )
            self._overflow = True
            self._keys.clear()
            self._invalidations.clear()
            self._journal_size = 0

    # -- operations ------------------------------------------------------------------------

    async def _redis(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call`` on Redis. A timeout is confirmed before it counts: when Redis then answers a
        PING it was slow (or this process was starved of CPU, as under a container's CPU limit),
        not down, and ``call`` runs once more. Every backend call is safe to repeat; a write
        repeated after its first attempt landed may report less (0 deleted, lease not released,
        an only-if-absent Set not stored)."""
        try:
            return await call()
        except BackendDown as error:
            if not error.timed_out:
                raise
            log.info("redis timed out (%s); checking it answers before failing over", error)
            try:
                await self._confirm()
            except (BackendDown, Unavailable):  # no answer, or an error one (BUSY, MASTERDOWN)
                raise error from None
            if self._degraded:
                # Another call found Redis down meanwhile: memory answers from now on, and what
                # memory holds (a lease, a write to replay) must not be bypassed on Redis.
                raise error from None
        return await call()

    async def _confirm(self) -> None:
        """One PING for every call that timed out meanwhile: many callers time out together when
        the pipelined connection gives up, and a PING each would exhaust the pool."""
        if self._confirming is None or self._confirming.done():
            self._confirming = asyncio.get_running_loop().create_task(self.primary.ping())
            self._confirming.add_done_callback(_retrieve)
        await asyncio.shield(self._confirming)

    async def _run(
        self,
        on_redis: Callable[[], Awaitable[T]],
        in_memory: Callable[[], Awaitable[T]],
        journal: Callable[[], None] | None = None,
    ) -> T:
        """On Redis; in memory when the circuit is open or opens now (``journal`` records a write)."""
        if not self._degraded:
            try:
                return await self._redis(on_redis)
            except BackendDown as error:
                self._trip(error)
        if journal is not None:
            journal()
        return await in_memory()

    async def get(self, namespace: str, key: str) -> bytes | None:
        """From Redis, or memory while degraded."""
        return await self._run(
            lambda: self.primary.get(namespace, key), lambda: self.fallback.get(namespace, key)
        )

    async def get_many(self, namespace: str, keys: Sequence[str]) -> list[bytes | None]:
        """From Redis, or memory while degraded."""
        return await self._run(
            lambda: self.primary.get_many(namespace, keys), lambda: self.fallback.get_many(namespace, keys)
        )

    async def set_many(self, namespace: str, writes: Sequence[Write]) -> list[bool]:
        """To Redis, or memory (journaled) while degraded."""
        return await self._run(
            lambda: self.primary.set_many(namespace, writes),
            lambda: self.fallback.set_many(namespace, writes),
            lambda: self._journal_keys(namespace, [w.key for w in writes]),
        )

    async def delete_many(self, namespace: str, keys: Sequence[str]) -> int:
        """In Redis, or memory (journaled) while degraded."""
        return await self._run(
            lambda: self.primary.delete_many(namespace, keys),
            lambda: self.fallback.delete_many(namespace, keys),
            lambda: self._journal_keys(namespace, keys),
        )

    async def delete_if_unchanged(self, namespace: str, key: str, head: bytes) -> bool:
        """In Redis, or memory (journaled) while degraded."""
        return await self._run(
            lambda: self.primary.delete_if_unchanged(namespace, key, head),
            lambda: self.fallback.delete_if_unchanged(namespace, key, head),
            lambda: self._journal_keys(namespace, [key]),
        )

    async def delete_matching(self, namespace: str, glob: str) -> int:
        """In Redis, or memory (journaled) while degraded."""
        return await self._run(
            lambda: self.primary.delete_matching(namespace, glob),
            lambda: self.fallback.delete_matching(namespace, glob),
            lambda: self._journal_invalidation(_Invalidation(namespace, glob, None)),
        )

    async def delete_by_source(self, namespace: str, path: str) -> int:
        """In Redis, or memory (journaled) while degraded."""
        return await self._run(
            lambda: self.primary.delete_by_source(namespace, path),
            lambda: self.fallback.delete_by_source(namespace, path),
            lambda: self._journal_invalidation(_Invalidation(namespace, None, path)),
        )

    async def acquire_lease(self, namespace: str, key: str, token: str, ttl_ms: int) -> bool:
        """In the active backend."""
        return await self._run(
            lambda: self.primary.acquire_lease(namespace, key, token, ttl_ms),
            lambda: self.fallback.acquire_lease(namespace, key, token, ttl_ms),
        )

    async def release_lease(self, namespace: str, key: str, token: str) -> bool:
        """In the active backend."""
        return await self._run(
            lambda: self.primary.release_lease(namespace, key, token),
            lambda: self.fallback.release_lease(namespace, key, token),
        )

    async def lease_ttl_ms(self, namespace: str, key: str) -> int | None:
        """In the active backend."""
        return await self._run(
            lambda: self.primary.lease_ttl_ms(namespace, key),
            lambda: self.fallback.lease_ttl_ms(namespace, key),
        )

    async def usage(self, namespace: str) -> Usage:
        """Of the active backend."""
        return await self._run(lambda: self.primary.usage(namespace), lambda: self.fallback.usage(namespace))

    def evictions(self, namespace: str) -> int:
        """Evictions by the memory backend (Redis does not report its own)."""
        return self.fallback.evictions(namespace)

    async def ping(self) -> None:
        """Answers while either backend does."""

    async def close(self) -> None:
        """Stop retrying and close Redis."""
        self._closed = True
        if self._recovery is not None:
            self._recovery.cancel()
            await asyncio.gather(self._recovery, return_exceptions=True)
        await self.primary.close()


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark the PING's outcome seen (every waiter may have been cancelled)."""
    if not task.cancelled():
        task.exception()


def _redact(url: str) -> str:
    """The URL without a password."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    return f"{scheme}{sep}{rest}"
