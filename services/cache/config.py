"""Configuration of the cache service, read from the environment at start."""

from __future__ import annotations

from dataclasses import dataclass

from services.runtime.config import Env, ServerConfig
from services.runtime.suite import process

__all__ = ["CacheConfig"]


@dataclass(frozen=True)
class CacheConfig:
    """Everything the cache process reads from its environment."""

    server: ServerConfig
    redis_url: str

    @classmethod
    def from_env(cls, env: Env) -> CacheConfig:
        """Read and check every variable; ConfigError names the first one at fault."""
        return cls(
            server=ServerConfig.from_env(env, "cache", process("cache").port),
            redis_url=env.text(
                "REDIS_URL",
                "",
                "Redis for the cache (redis://host:6379/0); unset: in-process memory only",
                check=lambda v: v.startswith(("redis://", "rediss://", "unix://")),
                expected="a redis://, rediss:// or unix:// URL",
            ),
        )
