"""Configuration of the batch service, read from the environment at start."""

from __future__ import annotations

from dataclasses import dataclass

from services.runtime.config import Env, ServerConfig
from services.runtime.suite import process

__all__ = ["BatchConfig"]


@dataclass(frozen=True)
class BatchConfig:
    """Everything the batch process reads from its environment."""

    server: ServerConfig

    @classmethod
    def from_env(cls, env: Env) -> BatchConfig:
        """Read and check every variable; ConfigError names the first one at fault."""
        return cls(server=ServerConfig.from_env(env, "batch", process("batch").port))
