"""The entry point every mediasuite process shares: read and check the configuration, set up
logging and telemetry, build and start the server, stop gracefully on SIGTERM or SIGINT.

A service's ``main()`` is one call to :func:`run_service`; configuration errors exit with code 2
and a message naming the variable, its value and what it accepts.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol, TypeVar

from services.runtime.config import ConfigError, Env, ServerConfig, Setting
from services.runtime.logs import configure_logging
from services.runtime.server import GrpcServer
from services.runtime.telemetry import Telemetry, TelemetryConfig, setup_telemetry

__all__ = ["HasServerConfig", "describe_settings", "run_service", "settings_table"]

log = logging.getLogger("mediasuite")

EXIT_CONFIG = 2


class HasServerConfig(Protocol):
    """A service configuration: it holds the shared server settings."""

    @property
    def server(self) -> ServerConfig: ...


C = TypeVar("C", bound=HasServerConfig)
Loader = Callable[[Env], C]
Builder = Callable[[C, Telemetry], Awaitable[GrpcServer]]


def describe_settings(load: Callable[[Env], object], service: str) -> list[Setting]:
    """Every variable a service reads (with its defaults), found by loading from an empty environment."""
    env = Env({})
    load(env)
    TelemetryConfig.from_env(env, f"mediasuite-{service}", {})
    seen: dict[str, Setting] = {}
    for setting in env.settings:
        seen.setdefault(setting.name, setting)
    return list(seen.values())


def settings_table(settings: Sequence[Setting]) -> str:
    """The settings as aligned text lines for --help."""
    width = max((len(s.name) for s in settings), default=0)
    return "\n".join(f"  {s.name:<{width}}  {s.meaning} (default: {s.default or 'unset'})" for s in settings)


def run_service(
    name: str,
    summary: str,
    load: Loader[C],
    build: Builder[C],
    *,
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run one service process until SIGTERM/SIGINT; returns the exit code."""
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog=f"mediasuite-{name}",
        description=summary,
        epilog="configuration (environment variables):\n" + settings_table(describe_settings(load, name)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="check the configuration, print it, and exit (0 when valid)",
    )
    args = parser.parse_args(argv)
    env = Env(environ)
    try:
        config = load(env)
        telemetry_config = TelemetryConfig.from_env(env, f"mediasuite-{name}", environ)
    except ConfigError as error:
        print(f"mediasuite-{name}: configuration error: {error}", file=sys.stderr)
        print(f"run `mediasuite-{name} --help` for every variable and its default", file=sys.stderr)
        return EXIT_CONFIG
    if args.check_config:
        print(f"mediasuite-{name}: configuration is valid\n{config}")
        return 0
    configure_logging(name, config.server.log_level, config.server.log_format)
    telemetry = setup_telemetry(telemetry_config)
    try:
        asyncio.run(_serve(build, config, telemetry))
    except OSError as error:
        log.error("%s", error)
        return 1
    finally:
        telemetry.shutdown()
    return 0


async def _serve(build: Builder[C], config: C, telemetry: Telemetry) -> None:
    server = await build(config, telemetry)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    await stop.wait()
    log.info("signal received: stopping")
    await server.stop()
