"""Configuration of the gateway, read from the environment at start."""

from __future__ import annotations

from dataclasses import dataclass

from services.runtime.config import Env, ServerConfig
from services.runtime.suite import PROCESSES, process

__all__ = ["GatewayConfig"]


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the gateway process reads from its environment."""

    server: ServerConfig
    http_listen: str
    upstreams: dict[str, str]

    @classmethod
    def from_env(cls, env: Env) -> GatewayConfig:
        """Read and check every variable; ConfigError names the first one at fault."""
        return cls(
            server=ServerConfig.from_env(env, "gateway", process("gateway").port),
            http_listen=env.address(
                "GATEWAY_HTTP_LISTEN", "127.0.0.1:8080", "address the HTTP gateway listens on"
            ),
            upstreams={
                p.name: env.address(
                    p.addr_env, p.default_address, f"address of the {p.name} service for clients"
                )
                for p in PROCESSES
                if p.name != "gateway"
            },
        )
