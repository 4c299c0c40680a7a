"""A process built exactly like a mediasuite service, whose cache Get sleeps: for shutdown tests.

SLEEPER_LISTEN=127.0.0.1:PORT python -m tests.support.sleeper
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from mediasuite.cache.v1 import cache_service_pb2_grpc
from services.runtime.app import run_service
from services.runtime.config import Env, ServerConfig
from services.runtime.server import GrpcServer, ServiceBinding
from services.runtime.telemetry import Telemetry
from tests.support.fakes import SleepyCache


@dataclass(frozen=True)
class SleeperConfig:
    server: ServerConfig

    @classmethod
    def from_env(cls, env: Env) -> SleeperConfig:
        return cls(ServerConfig.from_env(env, "sleeper", 0))


async def build(config: SleeperConfig, telemetry: Telemetry) -> GrpcServer:
    servicer = SleepyCache()  # type: ignore[abstract]
    binding = ServiceBinding(
        "mediasuite.cache.v1.CacheService",
        partial(cache_service_pb2_grpc.add_CacheServiceServicer_to_server, servicer),
    )
    return GrpcServer(config.server, [binding], telemetry=telemetry)


if __name__ == "__main__":
    raise SystemExit(run_service("sleeper", "a slow test service", SleeperConfig.from_env, build))
