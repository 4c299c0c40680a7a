"""Configuration of the processing service, read from the environment at start."""

from __future__ import annotations

from dataclasses import dataclass

from services.runtime.config import Env, ServerConfig
from services.runtime.suite import process

__all__ = ["ProcessingConfig"]


@dataclass(frozen=True)
class ProcessingConfig:
    """Everything the processing process reads from its environment."""

    server: ServerConfig

    @classmethod
    def from_env(cls, env: Env) -> ProcessingConfig:
        """Read and check every variable; ConfigError names the first one at fault."""
        return cls(server=ServerConfig.from_env(env, "processing", process("processing").port))
