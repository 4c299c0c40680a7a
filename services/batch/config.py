"""Configuration of the batch service, read from the environment at start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.runtime.config import Env, ServerConfig
from services.runtime.suite import process

__all__ = ["BatchConfig", "Execution", "Limits"]


@dataclass(frozen=True)
class Limits:
    """Bounds on what callers may ask for."""

    max_items: int
    max_listed: int
    max_tags: int
    events_kept: int
    history_kept: int
    retention_seconds: float


@dataclass(frozen=True)
class Execution:
    """How batches run: concurrency, retries, deadlines, event pacing."""

    max_running: int
    global_concurrency: int
    default_concurrency: int
    max_concurrency: int
    probe_chunk: int
    attempts: int
    backoff_seconds: float
    backoff_max_seconds: float
    item_deadline_seconds: float
    max_item_deadline_seconds: float
    progress_interval_seconds: float


@dataclass(frozen=True)
class BatchConfig:
    """Everything the batch process reads from its environment."""

    server: ServerConfig
    redis_url: str
    key_prefix: str
    media_root: Path
    derived_root: Path
    processing_addr: str
    cache_addr: str
    cache_timeout_seconds: float
    limits: Limits
    execution: Execution

    @classmethod
    def from_env(cls, env: Env) -> BatchConfig:
        """Read and check every variable; ConfigError names the first one at fault."""
        server = ServerConfig.from_env(env, "batch", process("batch").port)
        redis_url = env.redis_url(
            "REDIS_URL",
            "redis://127.0.0.1:6379/0",
            "Redis for the batch catalog, journal and event streams (redis://host:6379/0)",
        )
        key_prefix = env.text(
            "BATCH_KEY_PREFIX",
            "mediasuite:batch:",
            "prefix of every Redis key the batch service writes (several suites can share one Redis)",
            check=lambda v: 0 < len(v) <= 100 and not any(c in v for c in "*?[]{} \n"),
            expected="1-100 characters without spaces, braces or glob characters",
        )
        media_root = env.path(
            "BATCH_MEDIA_ROOT",
            "var/media",
            "the media library (the same directory as PROCESSING_MEDIA_ROOT); imports walk it, "
            "purge deletes from it",
        )
        derived_root = env.path(
            "BATCH_DERIVED_ROOT",
            "var/derived",
            "the derived store (the same directory as PROCESSING_DERIVED_ROOT); atomic batches "
            "stage outputs in it",
        )
        processing_addr = env.address(
            "PROCESSING_ADDR",
            process("processing").default_address,
            "address of the processing service for clients (several replicas: ipv4:a:1,b:2 or dns:///name:port)",
        )
        cache_addr = env.address(
            "CACHE_ADDR", process("cache").default_address, "address of the cache service for clients"
        )
        cache_timeout = env.duration(
            "BATCH_CACHE_TIMEOUT", 0.25, "deadline of each call to the cache service", min=0.001, max=60
        )
        limits = Limits(
            max_items=env.integer(
                "BATCH_MAX_ITEMS", 1_000_000, "most items one batch may select", min=1, max=100_000_000
            ),
            max_listed=env.integer(
                "BATCH_MAX_LISTED",
                100_000,
                "most ids or paths a selection may list in the request (use a query for more)",
                min=1,
                max=10_000_000,
            ),
            max_tags=env.integer("BATCH_MAX_TAGS", 64, "most tags one item may carry", min=1, max=10_000),
            events_kept=env.integer(
                "BATCH_EVENTS_KEPT",
                250_000,
                "events kept per batch in its Redis stream (older ones are trimmed; Watch replays "
                "what is kept)",
                min=100,
            ),
            history_kept=env.integer(
                "BATCH_HISTORY_KEPT",
                50,
                "processing history entries kept per catalog item",
                min=1,
                max=10_000,
            ),
            retention_seconds=env.duration(
                "BATCH_RETENTION",
                7 * 86400.0,
                "how long a finished batch (record, events, idempotency key) is kept",
                min=60,
            ),
        )
        max_concurrency = env.integer(
            "BATCH_MAX_CONCURRENCY", 32, "largest concurrency a batch may ask for", min=1, max=1024
        )
        execution = Execution(
            max_running=env.integer(
                "BATCH_MAX_RUNNING",
                4,
                "batches running at once; more wait QUEUED by priority",
                min=1,
                max=256,
            ),
            global_concurrency=env.integer(
                "BATCH_GLOBAL_CONCURRENCY",
                16,
                "work units (processing calls) in flight across all batches; shared by priority",
                min=1,
                max=4096,
            ),
            default_concurrency=env.integer(
                "BATCH_DEFAULT_CONCURRENCY",
                8,
                "work units in flight per batch when the batch does not say",
                min=1,
                max=max_concurrency,
            ),
            max_concurrency=max_concurrency,
            probe_chunk=env.integer(
                "BATCH_PROBE_CHUNK",
                32,
                "files an import probes per ProbeMany call (at most PROCESSING_MAX_PROBE_MANY)",
                min=1,
                max=4096,
            ),
            attempts=env.integer(
                "BATCH_ITEM_ATTEMPTS",
                5,
                "attempts per item for UNAVAILABLE, DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED failures",
                min=1,
                max=100,
            ),
            backoff_seconds=env.duration(
                "BATCH_RETRY_BACKOFF", 0.1, "first retry delay (doubles per attempt, full jitter)", min=0.0
            ),
            backoff_max_seconds=env.duration(
                "BATCH_RETRY_BACKOFF_MAX", 5.0, "longest retry delay", min=0.0, max=3600
            ),
            item_deadline_seconds=env.duration(
                "BATCH_ITEM_DEADLINE",
                60.0,
                "deadline of each attempt of an item (and of a thumbnail batch's preset lookup) "
                "when the batch does not say",
                min=0.001,
            ),
            max_item_deadline_seconds=env.duration(
                "BATCH_MAX_ITEM_DEADLINE", 3600.0, "longest item deadline a batch may ask for", min=0.001
            ),
            progress_interval_seconds=env.duration(
                "BATCH_PROGRESS_INTERVAL",
                1.0,
                "at most one progress event per batch in this interval",
                min=0.05,
                max=60,
            ),
        )
        return cls(
            server=server,
            redis_url=redis_url,
            key_prefix=key_prefix,
            media_root=media_root,
            derived_root=derived_root,
            processing_addr=processing_addr,
            cache_addr=cache_addr,
            cache_timeout_seconds=cache_timeout,
            limits=limits,
            execution=execution,
        )
