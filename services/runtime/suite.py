"""The processes of the suite, their default ports and the gRPC services each one serves.

One table, used by ``mediasuite up``, ``mediactl`` and the tests, so a port or a name is written once.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PROCESSES", "Process", "process"]


@dataclass(frozen=True)
class Process:
    """One process of the suite."""

    name: str
    port: int
    services: tuple[str, ...]
    summary: str

    @property
    def script(self) -> str:
        """Console script that starts it."""
        return f"mediasuite-{self.name}"

    @property
    def listen_env(self) -> str:
        """Variable the process reads for its listen address."""
        return f"{self.name.upper()}_LISTEN"

    @property
    def addr_env(self) -> str:
        """Variable clients read for its address."""
        return f"{self.name.upper()}_ADDR"

    @property
    def default_address(self) -> str:
        """Loopback address it listens on by default."""
        return f"127.0.0.1:{self.port}"


PROCESSES: tuple[Process, ...] = (
    Process(
        "cache", 50051, ("mediasuite.cache.v1.CacheService",), "namespaced cache (Redis, memory fallback)"
    ),
    Process(
        "processing", 50052, ("mediasuite.processing.v1.ProcessingService",), "operations on one media item"
    ),
    Process(
        "batch",
        50053,
        ("mediasuite.batch.v1.BatchService", "mediasuite.batch.v1.CatalogService"),
        "catalog and transactional bulk operations",
    ),
    Process("monitor", 50054, ("mediasuite.monitor.v1.MonitorService",), "metrics, alerts, health score"),
    Process("gateway", 50055, (), "HTTP/JSON gateway (gRPC port serves health only)"),
)


def process(name: str) -> Process:
    """The process called ``name``; KeyError naming the known ones otherwise."""
    for p in PROCESSES:
        if p.name == name:
            return p
    raise KeyError(f"unknown process {name!r}; known: {', '.join(p.name for p in PROCESSES)}")
