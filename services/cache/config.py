"""Configuration of the cache service, read from the environment at start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.cache.codecs import Codec
from services.cache.leases import LeasePolicy
from services.cache.namespaces import (
    DEFAULT_POLICIES,
    Namespaces,
    parse_namespace_spec,
    read_namespace_file,
)
from services.cache.store import Limits
from services.runtime.config import ConfigError, Env, ServerConfig
from services.runtime.suite import process

__all__ = ["CacheConfig"]

_CODECS = {"zstd": Codec.ZSTD, "lz4": Codec.LZ4, "zlib": Codec.ZLIB, "none": Codec.RAW}
_PREFIX_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_-.{}/")


def _load_namespaces(env: Env) -> Namespaces:
    namespaces = Namespaces(DEFAULT_POLICIES)
    file_name = env.text(
        "CACHE_NAMESPACES_FILE",
        "",
        "TOML file of namespace policies ([namespaces.<name>] default_ttl, max_ttl, freshness_checked)",
    )
    if file_name:
        try:
            overrides = read_namespace_file(Path(file_name).expanduser(), {p.name: p for p in namespaces})
        except ValueError as error:
            raise ConfigError(
                "CACHE_NAMESPACES_FILE", file_name, f"a readable namespace file ({error})"
            ) from None
        namespaces = namespaces.with_overrides(overrides)
    spec = env.text(
        "CACHE_NAMESPACES",
        "",
        'namespace TTLs that override the file and defaults: "name=ttl[/max_ttl][!],..." '
        "(! checks freshness on every get)",
    )
    if spec:
        try:
            overrides = parse_namespace_spec(spec, {p.name: p for p in namespaces})
        except ValueError as error:
            raise ConfigError("CACHE_NAMESPACES", spec, f'"name=ttl[/max_ttl][!],..." ({error})') from None
        namespaces = namespaces.with_overrides(overrides)
    return namespaces


@dataclass(frozen=True)
class CacheConfig:
    """Everything the cache process reads from its environment."""

    server: ServerConfig
    redis_url: str
    redis_prefix: str
    redis_timeout: float
    redis_pool: int
    retry_min: float
    retry_max: float
    journal_limit: int
    memory_bytes: int
    codec: Codec
    compress_over: int
    limits: Limits
    namespaces: Namespaces
    leases: LeasePolicy
    media_root: Path | None
    stats_refresh: float

    @classmethod
    def from_env(cls, env: Env) -> CacheConfig:
        """Read and check every variable; ConfigError names the first one at fault."""
        server = ServerConfig.from_env(env, "cache", process("cache").port)
        redis_url = env.redis_url(
            "REDIS_URL", "", "Redis for the cache (redis://host:6379/0); unset: in-process memory only"
        )
        prefix = env.text(
            "CACHE_REDIS_PREFIX",
            "mediasuite:cache:",
            "prefix of every Redis key the cache writes (several suites or tests can share one Redis)",
            check=lambda v: 0 < len(v) <= 100 and set(v) <= _PREFIX_CHARS,
            expected="1-100 characters of letters, digits and :_-.{}/",
        )
        redis_timeout = env.duration(
            "CACHE_REDIS_TIMEOUT",
            0.25,
            "a Redis command slower than this, then a PING as slow, means Redis is down (memory serves)",
            min=0.005,
            max=30,
        )
        redis_pool = env.integer(
            "CACHE_REDIS_POOL", 32, "most Redis connections the cache opens", min=1, max=1024
        )
        retry_min = env.duration(
            "CACHE_REDIS_RETRY_MIN", 0.1, "first wait before retrying a Redis that is down", min=0.01, max=60
        )
        retry_max = env.duration(
            "CACHE_REDIS_RETRY_MAX",
            5.0,
            "longest wait between retries of a Redis that is down",
            min=0.01,
            max=600,
        )
        journal_limit = env.integer(
            "CACHE_FAILOVER_JOURNAL",
            100_000,
            "keys changed during a Redis outage replayed to Redis on recovery; beyond it Redis is cleared",
            min=0,
        )
        memory_bytes = env.size(
            "CACHE_MEMORY_BYTES",
            256 * 1024**2,
            "byte budget of the memory backend (least recently used entries are evicted beyond it)",
            min=64 * 1024,
        )
        codec_name = env.text(
            "CACHE_CODEC", "zstd", "compression of values over CACHE_COMPRESS_OVER", choices=tuple(_CODECS)
        )
        compress_over = env.size(
            "CACHE_COMPRESS_OVER",
            1024,
            "values longer than this are compressed (kept only when it saves space)",
        )
        max_key = env.size("CACHE_MAX_KEY_BYTES", 1024, "longest key, bytes of UTF-8", min=16, max=65536)
        max_value = env.size(
            "CACHE_MAX_VALUE_BYTES",
            8 * 1024**2,
            "largest value accepted (RESOURCE_EXHAUSTED above)",
            min=1024,
        )
        if max_value > server.max_message_bytes - 64 * 1024:
            raise ConfigError(
                "CACHE_MAX_VALUE_BYTES",
                env.given("CACHE_MAX_VALUE_BYTES") or str(max_value),
                f"at most GRPC_MAX_MESSAGE_BYTES minus 64KiB ({server.max_message_bytes - 64 * 1024})",
            )
        max_keys = env.integer(
            "CACHE_MAX_KEYS_PER_CALL", 1000, "most keys or entries in one GetMany/SetMany/DeleteMany", min=1
        )
        lease_ttl = env.duration(
            "CACHE_LEASE_TTL", 30.0, "lease time when GetOrLease asks for none", min=0.01
        )
        lease_ttl_max = env.duration(
            "CACHE_LEASE_TTL_MAX", 600.0, "longest lease GetOrLease grants", min=0.01
        )
        lease_wait = env.duration(
            "CACHE_LEASE_WAIT", 5.0, "how long GetOrLease waits for another caller's value by default", min=0
        )
        lease_wait_max = env.duration(
            "CACHE_LEASE_WAIT_MAX", 60.0, "longest GetOrLease wait for another caller's value", min=0
        )
        media_root = env.text(
            "CACHE_MEDIA_ROOT",
            "",
            "the media library's root (as PROCESSING_MEDIA_ROOT), for checking the source files of entries",
        )
        stats_refresh = env.duration(
            "CACHE_STATS_REFRESH",
            10.0,
            "how old Redis entry counts in GetStats may be before they are counted again (SCAN)",
            min=0,
        )
        namespaces = _load_namespaces(env)
        return cls(
            server=server,
            redis_url=redis_url,
            redis_prefix=prefix,
            redis_timeout=redis_timeout,
            redis_pool=redis_pool,
            retry_min=retry_min,
            retry_max=max(retry_max, retry_min),
            journal_limit=journal_limit,
            memory_bytes=memory_bytes,
            codec=_CODECS[codec_name],
            compress_over=compress_over,
            limits=Limits(max_key, max_value, max_keys, server.max_message_bytes - 64 * 1024),
            namespaces=namespaces,
            leases=LeasePolicy(
                min(lease_ttl, lease_ttl_max), lease_ttl_max, min(lease_wait, lease_wait_max), lease_wait_max
            ),
            media_root=Path(media_root).expanduser() if media_root else None,
            stats_refresh=stats_refresh,
        )
