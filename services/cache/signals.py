"""In-process wake-ups for callers waiting on a key (GetOrLease waiters)."""

from __future__ import annotations

import asyncio

__all__ = ["Signals"]


class Signals:
    """Wakes the callers waiting on a key when it is Set, deleted or its lease is released here."""

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, str], tuple[asyncio.Event, list[int]]] = {}

    def notify(self, namespace: str, key: str) -> None:
        """Wake every waiter of the key."""
        if self._waiting:
            found = self._waiting.pop((namespace, key), None)
            if found is not None:
                found[0].set()

    async def wait(self, namespace: str, key: str, within: float) -> None:
        """Wait until the key is notified or ``within`` seconds pass."""
        k = (namespace, key)
        found = self._waiting.get(k)
        if found is None:
            found = self._waiting[k] = (asyncio.Event(), [0])
        event, waiters = found
        waiters[0] += 1
        try:
            await asyncio.wait_for(event.wait(), within)
        except TimeoutError:
            pass
        finally:
            waiters[0] -= 1
            if waiters[0] == 0 and self._waiting.get(k) is found:
                del self._waiting[k]

    @property
    def watched(self) -> int:
        """Keys with waiters now."""
        return len(self._waiting)
