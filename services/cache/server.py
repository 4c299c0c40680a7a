"""The cache process: builds its gRPC server and runs it (``mediasuite-cache``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from functools import partial

from mediasuite.cache.v1 import cache_service_pb2_grpc
from services.cache.backend import Backend, BackendKind, BackendState
from services.cache.codecs import Compressor
from services.cache.config import CacheConfig
from services.cache.failover import FailoverBackend
from services.cache.freshness import SourceChecker
from services.cache.leases import Leases
from services.cache.memory import MemoryBackend
from services.cache.redis_backend import RedisBackend
from services.cache.servicer import CacheServiceServicer
from services.cache.signals import Signals
from services.cache.stats import Stats, register_metrics
from services.cache.store import CacheStore
from services.runtime.app import run_service
from services.runtime.server import GrpcServer, ServiceBinding
from services.runtime.suite import process
from services.runtime.telemetry import Telemetry

__all__ = ["REDIS_HEALTH", "SERVICE", "build_server", "main"]

log = logging.getLogger("mediasuite.cache")

SERVICE = "mediasuite.cache.v1.CacheService"
# grpc.health.v1 name that is SERVING while Redis serves, NOT_SERVING while the cache is degraded
# to memory (the cache itself stays SERVING: it answers either way).
REDIS_HEALTH = f"{SERVICE}/redis"


async def build_server(config: CacheConfig, telemetry: Telemetry) -> GrpcServer:
    """The cache server, ready to start."""
    namespaces = config.namespaces
    memory = MemoryBackend(config.memory_bytes)
    stats = Stats(namespaces.names)
    signals = Signals()
    background: set[asyncio.Task[None]] = set()
    server: GrpcServer | None = None

    def health_follows(state: BackendState) -> None:
        if server is not None:
            task = asyncio.get_running_loop().create_task(
                server.set_serving(not state.degraded, REDIS_HEALTH)
            )
            background.add(task)
            task.add_done_callback(background.discard)

    backend: Backend
    failover: FailoverBackend | None = None
    if config.redis_url:
        redis = RedisBackend(
            config.redis_url,
            prefix=config.redis_prefix,
            timeout=config.redis_timeout,
            pool_size=config.redis_pool,
            index_ttl_ms=lambda name: int(namespaces.get(name).max_ttl * 1000),
            tracer=telemetry.tracer("mediasuite.cache.redis") if telemetry.tracing else None,
        )
        failover = FailoverBackend(
            redis,
            memory,
            namespaces.names,
            retry_min=config.retry_min,
            retry_max=config.retry_max,
            journal_limit=config.journal_limit,
            on_change=health_follows,
        )
        backend, state = failover, failover.state
    else:
        started = time.time()
        embedded = BackendState(BackendKind.MEMORY, BackendKind.MEMORY, False, "", started, 0)
        backend, state = memory, lambda: embedded
    store = CacheStore(
        namespaces,
        backend,
        compressor=Compressor(config.codec, config.compress_over),
        limits=config.limits,
        checker=SourceChecker(config.media_root),
        signals=signals,
        stats=stats,
        state=state,
        stats_refresh=config.stats_refresh,
    )
    leases = Leases(store, signals, config.leases)
    servicer = CacheServiceServicer(store, leases)
    server = GrpcServer(
        config.server,
        [
            ServiceBinding(
                SERVICE, partial(cache_service_pb2_grpc.add_CacheServiceServicer_to_server, servicer)
            )
        ],
        telemetry=telemetry,
    )
    metrics_on = telemetry.meter_provider is not None
    if metrics_on:
        register_metrics(telemetry.meter("mediasuite.cache"), stats, backend.evictions, state)

    async def start() -> None:
        assert server is not None  # noqa: S101 (narrows a type: an invariant of the code above, not a check of input)
        if failover is not None:
            await failover.start()
            await server.set_serving(not failover.degraded, REDIS_HEALTH)
        if config.media_root is not None and not config.media_root.is_dir():
            log.warning(
                "CACHE_MEDIA_ROOT %s is not a directory: entries with a source will read as stale",
                config.media_root,
            )
        if metrics_on and config.stats_refresh > 0:
            task = asyncio.get_running_loop().create_task(_refresh_forever(store, config.stats_refresh))
            background.add(task)
        log.info(
            "cache: %s, %d namespaces, codec %s over %d bytes, memory budget %d bytes",
            f"Redis {redis_label(config)}" if failover is not None else "memory only (no REDIS_URL)",
            len(namespaces),
            config.codec.name.lower(),
            config.compress_over,
            config.memory_bytes,
        )

    async def stop() -> None:
        for task in list(background):
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await backend.close()

    server.on_start(start)
    server.on_stop(stop)
    return server


def redis_label(config: CacheConfig) -> str:
    """Where Redis is (without a password) and the key prefix."""
    scheme, sep, rest = config.redis_url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    return f"{scheme}{sep}{rest} (prefix {config.redis_prefix!r})"


async def _refresh_forever(store: CacheStore, interval: float) -> None:
    """Keep entry counts current for the exported metrics."""
    while True:
        await asyncio.sleep(interval)
        try:
            await store.refresh_usage(force=True)
        except Exception:  # a failed count must not end the loop; the next one may work
            log.exception("counting cache entries failed")


def main(argv: Sequence[str] | None = None) -> int:
    """Console script entry point."""
    return run_service("cache", process("cache").summary, CacheConfig.from_env, build_server, argv=argv)
