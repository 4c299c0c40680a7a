"""``mediactl``: the command-line client of mediasuite, over the generated gRPC stubs.

Every service address has an option and an environment variable (``--cache-addr`` /
``CACHE_ADDR`` ...), defaulting to the loopback ports ``mediasuite up`` uses.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import grpc
from click.core import ParameterSource
from rich.console import Console
from rich.table import Table

from services.cli import gateway_commands
from services.cli.batch_commands import batch, catalog, import_directory
from services.cli.cache_commands import cache
from services.cli.help import SuiteGroup
from services.cli.monitor_commands import monitor
from services.cli.probe import HealthResult, check_health
from services.cli.processing_commands import process
from services.cli.trace_commands import trace
from services.runtime.config import ConfigError, Env
from services.runtime.suite import PROCESSES
from services.runtime.tls import TlsConfig

__all__ = ["Targets", "cli", "main"]

console = Console(highlight=False)


@dataclass(frozen=True)
class Targets:
    """The address of each process, as chosen by options or environment, and the client certificate
    to present when the suite runs with mutual TLS."""

    addresses: dict[str, str]
    timeout: float
    tls: TlsConfig | None = None

    def channel(self, address: str, options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
        """A blocking channel to ``address``: mutual TLS with --tls, plaintext otherwise."""
        if self.tls is not None:
            return grpc.secure_channel(address, self.tls.channel_credentials(), options=options)
        return grpc.insecure_channel(address, options=options)

    def aio_channel(self, address: str) -> grpc.aio.Channel:
        """An asyncio channel to ``address``: mutual TLS with --tls, plaintext otherwise."""
        if self.tls is not None:
            return grpc.aio.secure_channel(address, self.tls.channel_credentials())
        return grpc.aio.insecure_channel(address)


def _client_tls(directory: Path | None) -> TlsConfig | None:
    if directory is None:
        return None
    config = TlsConfig(directory / "client.crt", directory / "client.key", directory / "ca.crt")
    missing = [str(p) for p in (config.cert, config.key, config.ca) if not p.is_file()]
    if missing:
        raise click.UsageError(
            f"--tls {directory}: missing {', '.join(missing)}; make them with `make certs` "
            f"(or `mediasuite certs --dir {directory}`)"
        )
    return config


def _check_address(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """An address as the services read it; the error names the variable when the value came from it."""
    variable = str(param.envvar)
    try:
        return Env({variable: value}).address(variable, value, "")
    except ConfigError as error:
        source = ctx.get_parameter_source(param.name or "")
        origin = f" (from {variable})" if source is ParameterSource.ENVIRONMENT else ""
        raise click.BadParameter(f"{value!r}{origin}: expected {error.expected}") from None


def _address_options(func: click.decorators.FC) -> click.decorators.FC:
    for proc in reversed(PROCESSES):
        func = click.option(
            f"--{proc.name}-addr",
            envvar=proc.addr_env,
            default=proc.default_address,
            show_default=True,
            show_envvar=True,
            callback=_check_address,
            help=f"Address of the {proc.name} process.",
        )(func)
    return func


@click.group(
    cls=SuiteGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}
)
@_address_options
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.05),
    default=5.0,
    show_default=True,
    help="Deadline of each call, seconds.",
)
@click.option(
    "--tls",
    "tls_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MEDIASUITE_TLS_DIR",
    show_envvar=True,
    help="Call over mutual TLS with DIR/client.crt, client.key and ca.crt (made by `make certs`), "
    "as the suite started by `mediasuite up --tls DIR` requires.",
)
@click.pass_context
def cli(ctx: click.Context, /, timeout: float, tls_dir: Path | None, **addresses: str) -> None:
    """Call the mediasuite services.

    \b
    Examples:
      mediactl health                  # is every service serving?
      mediactl --cache-addr 10.0.0.5:50051 health
      mediactl --tls certs health      # the suite runs with mutual TLS (mediasuite up --tls certs)
    """
    ctx.obj = Targets(
        {name.removesuffix("_addr"): addr for name, addr in addresses.items()}, timeout, _client_tls(tls_dir)
    )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per check instead of a table.")
@click.pass_obj
def health(targets: Targets, as_json: bool) -> None:
    """Check every service over grpc.health.v1; exit 1 when one is not SERVING.

    Example: mediactl health --json
    """

    async def run() -> list[tuple[str, HealthResult]]:
        checks = [
            check_health(
                targets.addresses[p.name], ("", *p.services), deadline_s=targets.timeout, tls=targets.tls
            )
            for p in PROCESSES
        ]
        found = await asyncio.gather(*checks)
        return [(p.name, r) for p, results in zip(PROCESSES, found, strict=True) for r in results]

    results = asyncio.run(run())
    if as_json:
        for name, r in results:
            click.echo(
                json.dumps(
                    {
                        "process": name,
                        "target": r.target,
                        "service": r.service,
                        "status": r.status,
                        "latency_ms": round(r.latency_ms, 2),
                    }
                )
            )
    else:
        table = Table()
        for column in ("process", "address", "service", "status", "latency"):
            table.add_column(column, justify="right" if column == "latency" else "left")
        for name, r in results:
            style = "green" if r.serving else "red"
            table.add_row(
                name, r.target, r.service or "(server)", f"[{style}]{r.status}[/]", f"{r.latency_ms:.1f} ms"
            )
        console.print(table)
    bad = sorted({name for name, r in results if not r.serving}, key=[p.name for p in PROCESSES].index)
    if bad:
        raise click.ClickException(
            f"not serving: {', '.join(bad)}. Is the suite running (`make run`)? Are the addresses right?"
        )


# Command groups of the services register here, one line each: cli.add_command(<group>).
cli.add_command(cache)
cli.add_command(monitor)
cli.add_command(batch)
cli.add_command(catalog)
cli.add_command(import_directory)
cli.add_command(process)
cli.add_command(gateway_commands.gateway)
cli.add_command(trace)


def main() -> None:
    """Console script entry point."""
    cli()
