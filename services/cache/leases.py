"""Stampede protection: when many callers miss one key at once, exactly one computes it.

GetOrLease returns the value when it is there. Otherwise the caller tries to take the key's lease
(set only if free, in one Redis script): the one that gets it computes the value and Sets it with
the lease token; the others wait for it. A waiter is woken at once when the value is Set through
this process and polls the backend (10 ms, doubling to 200 ms) for values Set through another
replica. A waiter whose lease holder gave up (ReleaseLease) or let the lease lapse takes the lease
over itself. A waiter that runs out of time gets DEADLINE_EXCEEDED saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from services.cache.entries import Fingerprint
from services.cache.signals import Signals
from services.cache.store import CacheStore, Hit
from services.runtime.errors import DeadlineExceeded, InvalidArgument

__all__ = ["Lease", "LeaseOutcome", "LeasePolicy", "Leases"]

POLL_MIN = 0.01
POLL_MAX = 0.2
# A waiter answers this share of the caller's remaining time (at least 50 ms) before its deadline,
# so the answer arrives in time.
DEADLINE_MARGIN = 0.05
DEADLINE_SHARE = 0.1


@dataclass(frozen=True)
class LeasePolicy:
    """Bounds of leases and waits (seconds)."""

    default_ttl: float = 30.0
    max_ttl: float = 600.0
    default_wait: float = 5.0
    max_wait: float = 60.0


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease on a missing key: its token and when it lapses (wall-clock ms)."""

    token: str
    expires_at_ms: int


@dataclass(frozen=True, slots=True)
class LeaseOutcome:
    """What GetOrLease gave: the value, or the lease; and whether the caller waited."""

    hit: Hit | None
    lease: Lease | None
    waited: bool


class Leases:
    """GetOrLease and ReleaseLease over a store's backend."""

    def __init__(
        self,
        store: CacheStore,
        signals: Signals,
        policy: LeasePolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._signals = signals
        self._policy = policy
        self._clock = clock

    def _bounded(self, value: float | None, default: float, maximum: float, field: str) -> float:
        if value is None:
            return default
        if value <= 0:
            raise InvalidArgument(f"{field} must be positive (or unset for {default:g}s)", field=field)
        return min(value, maximum)

    async def get_or_lease(
        self,
        namespace: str,
        key: str,
        *,
        lease_ttl: float | None = None,
        wait: float | None = None,
        fingerprint: Fingerprint | None = None,
        time_left: float | None = None,
    ) -> LeaseOutcome:
        """The value if present; else the lease if free; else wait for the value (or the lease)."""
        store = self._store
        policy = self._policy
        ttl = self._bounded(lease_ttl, policy.default_ttl, policy.max_ttl, "lease_ttl")
        patience = self._bounded(wait, policy.default_wait, policy.max_wait, "wait_timeout")
        if time_left is not None:
            margin = max(DEADLINE_MARGIN, time_left * DEADLINE_SHARE)
            patience = min(patience, max(time_left - margin, 0.0))
        ends = time.monotonic() + patience
        waited = False
        poll = POLL_MIN
        while True:
            lookup = await store.get(namespace, key, fingerprint, count=False)
            if isinstance(lookup, Hit):
                store.count(namespace, lookup)
                return LeaseOutcome(lookup, None, waited)
            token = secrets.token_urlsafe(18)
            ttl_ms = max(int(ttl * 1000), 1)
            if await store.backend.acquire_lease(namespace, key, token, ttl_ms):
                # The holder may have Set the value (and freed the lease) since the lookup: a Set
                # writes the value before it frees the lease, so looking again now sees it.
                try:
                    again = await store.get(namespace, key, fingerprint, count=False)
                    if isinstance(again, Hit):
                        await self._give_back(namespace, key, token)
                        store.count(namespace, again)
                        return LeaseOutcome(again, None, waited)
                except BaseException:
                    # The caller will never see this token (cancelled, out of time, Redis
                    # refused): free the lease, or every waiter would wait out its TTL.
                    with contextlib.suppress(Exception):
                        await asyncio.shield(self._give_back(namespace, key, token))
                    raise
                store.count(namespace, lookup)
                return LeaseOutcome(None, Lease(token, int(self._clock() * 1000) + ttl_ms), waited)
            left = ends - time.monotonic()
            if left <= 0:
                store.count(namespace, lookup)
                lapses = await store.backend.lease_ttl_ms(namespace, key)
                when = f"it lapses in {lapses / 1000:.1f}s" if lapses else "it has just lapsed"
                raise DeadlineExceeded(
                    f"waited {patience:.2f}s for {namespace}/{key[:100]}, which another caller is still "
                    f"computing under a lease ({when}); retry, or compute it without the cache"
                )
            waited = True
            await self._signals.wait(namespace, key, min(left, poll))
            poll = min(poll * 2, POLL_MAX)

    async def _give_back(self, namespace: str, key: str, token: str) -> None:
        await self._store.backend.release_lease(namespace, key, token)
        self._signals.notify(namespace, key)

    async def release(self, namespace: str, key: str, token: str) -> bool:
        """Give a lease back; waiters wake and one of them takes it over."""
        self._store.namespaces.get(namespace)
        self._store.check_key(key)
        if not token:
            raise InvalidArgument("lease_token must not be empty", field="lease_token")
        released = await self._store.backend.release_lease(namespace, key, token)
        self._signals.notify(namespace, key)
        return released
