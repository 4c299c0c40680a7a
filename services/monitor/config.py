"""Configuration of the monitor service, read from the environment at start."""

from __future__ import annotations

from dataclasses import dataclass

from services.runtime.config import Env, ServerConfig
from services.runtime.suite import process

__all__ = ["MonitorConfig"]


@dataclass(frozen=True)
class MonitorConfig:
    """Everything the monitor process reads from its environment."""

    server: ServerConfig

    @classmethod
    def from_env(cls, env: Env) -> MonitorConfig:
        """Read and check every variable; ConfigError names the first one at fault."""
        return cls(server=ServerConfig.from_env(env, "monitor", process("monitor").port))
