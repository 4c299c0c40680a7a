"""What the cache needs from a storage backend, and the types both backends share.

A backend stores opaque entry blobs (see ``entries.py``) under (namespace, key), with a TTL, an
optional source path for invalidation by source, and leases for stampede protection. Two
implementations: ``memory.MemoryBackend`` and ``redis_backend.RedisBackend``; ``failover``
combines them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "Backend",
    "BackendDown",
    "BackendKind",
    "BackendState",
    "Usage",
    "Write",
]


class BackendKind(enum.IntEnum):
    """Which backend answers; the numbers are those of the proto's BackendKind enum."""

    REDIS = 1
    MEMORY = 2


@dataclass(frozen=True)
class BackendState:
    """What GetStats and health report about the backend."""

    active: BackendKind
    configured: BackendKind
    degraded: bool
    reason: str
    since: float  # wall-clock seconds of the last switch (or of the start)
    failovers: int


class BackendDown(Exception):
    """The backend did not answer (connection refused or lost, timeout): the failover layer decides.

    ``timed_out`` tells a timeout (Redis may be alive but slow, or this process was starved of CPU)
    from a refused or lost connection (Redis is certainly unreachable).
    """

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


@dataclass(frozen=True, slots=True)
class Write:
    """One entry to store."""

    key: str
    blob: bytes
    ttl_ms: int
    raw_size: int
    stored_size: int
    source: str | None = None  # the fingerprint's path, indexed for invalidation by source
    only_if_absent: bool = False


@dataclass(frozen=True, slots=True)
class Usage:
    """What a namespace holds now."""

    entries: int = 0
    raw_bytes: int = 0
    stored_bytes: int = 0


class Backend(Protocol):
    """Storage of entry blobs. Every method may raise :class:`BackendDown`."""

    @property
    def kind(self) -> BackendKind:
        """Which kind of backend this is."""
        ...

    async def get(self, namespace: str, key: str) -> bytes | None:
        """The blob under key, or None."""
        ...

    async def get_many(self, namespace: str, keys: Sequence[str]) -> list[bytes | None]:
        """The blobs under keys, in order, in one round trip."""
        ...

    async def set_many(self, namespace: str, writes: Sequence[Write]) -> list[bool]:
        """Store the writes in one round trip; per write, whether it was stored (only_if_absent)."""
        ...

    async def delete_many(self, namespace: str, keys: Sequence[str]) -> int:
        """Delete keys in one round trip; how many existed."""
        ...

    async def delete_if_unchanged(self, namespace: str, key: str, head: bytes) -> bool:
        """Delete key only if its blob still starts with ``head`` (a stale entry nobody replaced)."""
        ...

    async def delete_matching(self, namespace: str, glob: str) -> int:
        """Delete every key of the namespace matching a Redis glob, incrementally; how many."""
        ...

    async def delete_by_source(self, namespace: str, path: str) -> int:
        """Delete every entry of the namespace whose fingerprint has this path; how many."""
        ...

    async def acquire_lease(self, namespace: str, key: str, token: str, ttl_ms: int) -> bool:
        """Take the lease on key for ttl_ms if nobody holds it."""
        ...

    async def release_lease(self, namespace: str, key: str, token: str) -> bool:
        """Give the lease back if ``token`` holds it."""
        ...

    async def lease_ttl_ms(self, namespace: str, key: str) -> int | None:
        """Milliseconds left on the lease of key, or None when there is none."""
        ...

    async def usage(self, namespace: str) -> Usage:
        """Entries and bytes the namespace holds."""
        ...

    def evictions(self, namespace: str) -> int:
        """Entries of the namespace evicted for space since start (0 for Redis)."""
        ...

    async def ping(self) -> None:
        """Check the backend answers (BackendDown otherwise)."""
        ...

    async def close(self) -> None:
        """Release connections and tasks."""
        ...
