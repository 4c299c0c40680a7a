"""``mediasuite``: run the whole suite on this machine.

``mediasuite up`` starts the five processes on loopback (cache, processing, batch, monitor,
gateway), waits until each reports SERVING over grpc.health.v1, prints where each listens, and
keeps them running. A process that dies is reported with the end of its log and the suite stops
(nothing is restarted silently). Ctrl-C or SIGTERM stops them all gracefully.

On a first run (the default media library, empty) it also writes and imports a sample library
(services/cli/first_run.py); every run makes a new admin API key for the gateway and prints three
commands to try (services/cli/local_access.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from services.cli.certs import CLIENT, Leaf, make_suite_certs, suite_certs
from services.cli.first_run import SampleError, SamplePlan, SampleResult, import_sample, plan_sample
from services.cli.help import SuiteGroup
from services.cli.local_access import (
    KEY_ENV,
    GatewayAccess,
    http_base,
    mediactl_command,
    prepare_gateway_access,
    try_next,
)
from services.cli.probe import check_health
from services.runtime.app import describe_settings
from services.runtime.config import ConfigError, Env, Setting
from services.runtime.suite import PROCESSES, Process
from services.sample.library import SAMPLE, SAMPLE_DIR, SampleFile, write_sample

__all__ = [
    "chosen_media_root",
    "configuration_table",
    "main",
    "prepare_media",
    "process_settings",
    "suite_environment",
]

# Start order: dependencies first. Stop order is the reverse.
_MODULES = {
    "cache": "services.cache",
    "processing": "services.processing",
    "monitor": "services.monitor",
    "batch": "services.batch",
    "gateway": "gateway",
}
# The monitor starts first so it receives every service's metrics from their first export.
_START_ORDER = ("monitor", "cache", "processing", "batch", "gateway")
_READY_TIMEOUT = 60.0
# Settings naming the suite's one media library and one derived store (processing's first).
_MEDIA_ROOTS = ("PROCESSING_MEDIA_ROOT", "CACHE_MEDIA_ROOT", "BATCH_MEDIA_ROOT")
_DERIVED_ROOTS = ("PROCESSING_DERIVED_ROOT", "BATCH_DERIVED_ROOT")

console = Console(stderr=True, highlight=False)


def suite_environment(environ: Mapping[str, str], state_dir: Path) -> dict[str, str]:
    """The environment every child gets: the caller's, plus loopback addresses for every process."""
    env = dict(environ)
    for proc in PROCESSES:
        env.setdefault(proc.listen_env, proc.default_address)
        env.setdefault(proc.addr_env, env[proc.listen_env].replace("0.0.0.0", "127.0.0.1"))  # noqa: S104
    env.setdefault("GATEWAY_HTTP_LISTEN", "127.0.0.1:8080")
    # Every service's meter provider exports to the monitor's OTLP receiver (metrics only: traces stay
    # off unless the caller configured them), every 5 s, with exponential histograms so the monitor's
    # latency percentiles are within a few percent even for sub-millisecond calls.
    env.setdefault("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", f"http://{env['MONITOR_ADDR']}")
    env.setdefault("OTEL_METRIC_EXPORT_INTERVAL", "5000")
    env.setdefault(
        "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", "base2_exponential_bucket_histogram"
    )
    # One media library and one derived store for the whole suite: processing reads media under
    # its root, the cache checks an entry's source file under its own, batch imports from the
    # library and stages outputs in the derived store. The directory the user named for any of
    # them is everyone's; else STATE_DIR/media and STATE_DIR/derived.
    for names, default in ((_MEDIA_ROOTS, state_dir / "media"), (_DERIVED_ROOTS, state_dir / "derived")):
        chosen = next((env[name] for name in names if env.get(name)), str(default))
        for name in names:
            env.setdefault(name, chosen)
    # The catalog lives in Redis, the library on disk: each library gets its own catalog, so two
    # checkouts (or a new clone) on one machine never see each other's items.
    library = Path(env["BATCH_MEDIA_ROOT"]).expanduser().resolve()
    env.setdefault("BATCH_KEY_PREFIX", f"mediasuite:batch:{hashlib.sha256(bytes(library)).hexdigest()[:12]}:")
    env.setdefault("MEDIASUITE_STATE_DIR", str(state_dir))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def chosen_media_root(environ: Mapping[str, str]) -> str | None:
    """The variable the user chose the media library with, or None when it is the default."""
    return next((name for name in _MEDIA_ROOTS if environ.get(name)), None)


def prepare_media(env: Mapping[str, str], state_dir: Path) -> list[str]:
    """Create the media and derived directories under the state dir; warnings about the others."""
    warnings = []
    for names in (_MEDIA_ROOTS, _DERIVED_ROOTS):
        first, *others = names
        path = Path(env[first]).expanduser().resolve()
        if path.is_relative_to(state_dir):
            path.mkdir(parents=True, exist_ok=True)
        elif not path.is_dir():
            warnings.append(f"{first} ({path}) is not a directory")
        for name in others:
            if env.get(name) and Path(env[name]).expanduser().resolve() != path:
                warnings.append(
                    f"{name} ({env[name]}) is not {first} ({path}): the processes will not see "
                    "the same files (the cache takes processing's entries for stale; batch imports "
                    "and stages elsewhere)"
                )
    return warnings


@dataclass
class Child:
    """A running process of the suite."""

    proc: Process
    popen: asyncio.subprocess.Process
    log_path: Path
    log_file: IO[bytes] = field(repr=False)

    def tail(self, lines: int = 15) -> str:
        """The end of its log."""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


async def _start(proc: Process, env: dict[str, str], log_dir: Path) -> Child:
    log_path = log_dir / f"{proc.name}.log"
    log_file = log_path.open("ab")
    popen = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        _MODULES[proc.name],
        env=env,
        stdout=log_file,
        stderr=log_file,
        start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
    )
    return Child(proc, popen, log_path, log_file)


async def _wait_ready(child: Child, address: str, tls: Leaf | None) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        if child.popen.returncode is not None:
            raise RuntimeError(
                f"{child.proc.name} exited with code {child.popen.returncode} during start-up; "
                f"end of {child.log_path}:\n{child.tail()}"
            )
        results = await check_health(address, deadline_s=0.5, tls=None if tls is None else tls.tls_config())
        if results[0].serving:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(
        f"{child.proc.name} did not report SERVING within {_READY_TIMEOUT:.0f}s; see {child.log_path}"
    )


async def _stop_all(children: list[Child], grace: float) -> None:
    for child in reversed(children):
        if child.popen.returncode is None:
            child.popen.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(child.popen.wait(), grace + 5)
            except TimeoutError:
                console.print(f"[yellow]{child.proc.name} did not stop within {grace + 5:.0f}s: killed[/]")
                child.popen.kill()
                await child.popen.wait()
        child.log_file.close()


@dataclass(frozen=True)
class Run:
    """What this start does besides starting the processes."""

    env: dict[str, str]
    log_dir: Path
    grace: float
    media_root: Path
    sample: SamplePlan
    access: GatewayAccess
    tls_dir: Path | None = None
    tls: dict[str, Leaf] | None = None

    @property
    def client_tls(self) -> Leaf | None:
        """The client certificate the launcher itself uses (readiness, the sample import)."""
        return None if self.tls is None else self.tls[CLIENT]


def _print_ready(children: list[Child], run: Run, elapsed: float, sample: SampleResult | None) -> None:
    env = run.env
    title = f"mediasuite is up ({elapsed:.1f}s)"
    table = Table(title=title, title_justify="left")
    table.add_column("process")
    table.add_column("gRPC address")
    table.add_column("pid", justify="right")
    table.add_column("log")
    for child in children:
        table.add_row(child.proc.name, env[child.proc.addr_env], str(child.popen.pid), str(child.log_path))
    console.print(table)
    http = http_base(env)
    # soft_wrap: a long line (a path, a URL, a key) stays one line, to copy it or find it in a log.
    line = functools.partial(console.print, soft_wrap=True)
    line(f"Dashboard: {http}/  (API reference {http}/docs; health {http}/healthz)")
    line(f"Prometheus metrics: http://{env.get('MONITOR_HTTP_LISTEN', '127.0.0.1:9464')}/metrics")
    redis = env.get("REDIS_URL") or "none: the cache keeps entries in memory (set REDIS_URL to use Redis)"
    line(f"Redis: {redis}")
    _print_tls(run.client_tls)
    media = Path(env["PROCESSING_MEDIA_ROOT"]).expanduser().resolve()
    derived = Path(env["PROCESSING_DERIVED_ROOT"]).expanduser().resolve()
    line(f"Media library: {media}")
    line(f"  (request paths are relative to it; stored outputs go to {derived})")
    has_sample = (media / SAMPLE_DIR).is_dir()
    if sample is not None:
        line(
            f"Sample library: {sample.imported} files imported, {sample.thumbnails} thumbnails made, "
            f"{sample.analysed} images analysed (see sample/ABOUT.txt)"
        )
    elif has_sample:
        line(f"Sample library: in {media / SAMPLE_DIR} (written and imported on the first run)")
    elif not run.sample.write:
        line(f"Sample library: {run.sample.reason}")
    line(f"Gateway access: {run.access.describe()}")
    if run.access.mode == "generated":
        line("Admin API key for this run, shown once (paste it into the dashboard; curl reads it):")
        line(f"  export {KEY_ENV}={run.access.key}", markup=False)
    elif run.access.mode == "configured":
        line(f"  (the curl command below reads one of your keys from ${KEY_ENV})")
    line("Try next:")
    mediactl = mediactl_command() + (f" --tls {run.tls_dir}" if run.tls_dir is not None else "")
    for command in try_next(env, run.access, sample=has_sample, mediactl=mediactl):
        line(f"  {command}", markup=False)
    line("Stop: Ctrl-C")


def tls_environment(env: Mapping[str, str], leaf: Leaf) -> dict[str, str]:
    """What one child needs for mutual TLS: its certificate for gRPC and for its OTLP metrics export
    (to the monitor's port, which then speaks TLS only: https unless the caller chose an endpoint)."""
    extra = {
        **leaf.env(),
        "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE": str(leaf.ca),
        "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE": str(leaf.cert),
        "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY": str(leaf.key),
    }
    if env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") == f"http://{env.get('MONITOR_ADDR')}":
        extra["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] = f"https://{env['MONITOR_ADDR']}"
    return extra


def _print_tls(client: Leaf | None) -> None:
    if client is None:
        console.print("gRPC: plaintext (loopback); mutual TLS: make certs && mediasuite up --tls certs")
    else:
        console.print(f"gRPC: mutual TLS, CA {client.ca}; clients need a certificate of it ({client.cert})")


class _Stopped(Exception):
    """Ctrl-C while the sample was being written."""


async def _write_sample(run: Run, progress: Progress, stop: threading.Event) -> bool:
    """Write the sample in a thread; False when it was interrupted or could not be written."""
    task = progress.add_task("generating the sample library", total=len(SAMPLE))

    def written(_file: SampleFile) -> None:
        progress.advance(task)
        if stop.is_set():
            raise _Stopped

    try:
        await asyncio.to_thread(write_sample, run.media_root, written)
    except _Stopped:
        return False
    except OSError as error:
        console.print(f"[yellow]the sample library could not be written: {error}[/]", soft_wrap=True)
        return False
    return True


async def _start_all(run: Run, children: list[Child], stop_writing: threading.Event) -> SampleResult | None:
    """Start the processes in order (writing the sample meanwhile), then import the sample."""
    by_name = {p.name: p for p in PROCESSES}
    columns = (
        SpinnerColumn(finished_text="[green]done[/]"),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        writer = (
            asyncio.ensure_future(_write_sample(run, progress, stop_writing)) if run.sample.write else None
        )
        try:
            task = progress.add_task("starting services", total=len(_START_ORDER))
            for name in _START_ORDER:
                progress.update(task, description=f"starting {name}")
                child_env = (
                    run.env if run.tls is None else {**run.env, **tls_environment(run.env, run.tls[name])}
                )
                child = await _start(by_name[name], child_env, run.log_dir)
                children.append(child)
                await _wait_ready(child, run.env[by_name[name].addr_env], run.client_tls)
                progress.advance(task)
            progress.update(task, description="services started")
        except BaseException:
            stop_writing.set()
            raise
        finally:
            written = writer is not None and await writer
        if not written:
            return None
        try:
            client = run.client_tls
            return await import_sample(
                run.env["BATCH_ADDR"], progress, tls=None if client is None else client.tls_config()
            )
        except SampleError as error:
            console.print(f"[yellow]the sample was written but not imported: {error}[/]", soft_wrap=True)
            return None


async def _up(run: Run) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    started = time.monotonic()
    children: list[Child] = []
    stop_writing = threading.Event()
    code = 0
    try:
        starting = asyncio.ensure_future(_start_all(run, children, stop_writing))
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait([starting, stopper], return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # Ctrl-C while starting: stop what started
            stop_writing.set()
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            stopper.cancel()
            console.print("interrupted while starting")
        else:
            sample = starting.result()
            _print_ready(children, run, time.monotonic() - started, sample)
            exits = {asyncio.ensure_future(c.popen.wait()): c for c in children}
            done, _ = await asyncio.wait([stopper, *exits], return_when=asyncio.FIRST_COMPLETED)
            for fut in done:
                if fut in exits:
                    child = exits[fut]
                    console.print(
                        f"[red]{child.proc.name} exited unexpectedly with code {child.popen.returncode}; "
                        f"stopping the suite. End of {child.log_path}:[/]\n{child.tail()}"
                    )
                    code = 1
            stopper.cancel()
            for fut in exits:
                fut.cancel()
    except RuntimeError as error:
        console.print(f"[red]{error}[/]")
        code = 1
    console.print("stopping mediasuite ...")
    await _stop_all(children, run.grace)
    console.print("stopped")
    return code


@click.group(
    cls=SuiteGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}
)
def cli() -> None:
    """Run the mediasuite services on this machine."""


@cli.command()
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MEDIASUITE_STATE_DIR",
    default="var",
    show_default=True,
    show_envvar=True,
    help="Directory for logs and local data.",
)
@click.option(
    "--tls",
    "tls_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MEDIASUITE_TLS_DIR",
    default=None,
    help="Run every gRPC connection over mutual TLS with the certificates in this directory "
    "(made by `make certs`: certs/). Default: plaintext. Also $MEDIASUITE_TLS_DIR.",
)
@click.option(
    "--no-sample",
    is_flag=True,
    help="Do not write the sample library into an empty default library (also: MEDIASUITE_SAMPLE=off).",
)
def up(state_dir: Path, tls_dir: Path | None, no_sample: bool) -> None:
    """Start all five services on loopback and keep them running until Ctrl-C.

    Each service reads its settings from the environment (see `mediasuite-<service> --help`);
    unset addresses default to 127.0.0.1 and the documented ports. Logs go to STATE_DIR/log.
    Media paths are relative to STATE_DIR/media (created; processing reads it, the cache checks
    freshness against it, batch imports from it) unless PROCESSING_MEDIA_ROOT, CACHE_MEDIA_ROOT or
    BATCH_MEDIA_ROOT names another directory (for all three); stored outputs go to
    STATE_DIR/derived unless PROCESSING_DERIVED_ROOT or BATCH_DERIVED_ROOT is set.

    \b
    First run: when STATE_DIR/media is empty (and no other library was named), a generated sample
    library (photos, two clips, two graphics) is written to STATE_DIR/media/sample, imported,
    thumbnailed and analysed, with progress shown; --no-sample or MEDIASUITE_SAMPLE=off turns it off.
    Every run makes a new admin API key for the gateway (printed once; only its SHA-256 is kept, in
    STATE_DIR/gateway/api-keys), unless GATEWAY_API_KEYS(_FILE) are set or GATEWAY_AUTH=off.

    Example: REDIS_URL=redis://127.0.0.1:6379/0 mediasuite up --no-sample

    With --tls DIR each process gets DIR/<process>.crt and .key and DIR/ca.crt as GRPC_TLS_*
    (mutual TLS on every gRPC port, its own calls and its metrics export); the HTTP gateway stays HTTP.

    Example: make certs && mediasuite up --tls certs
    """
    state_dir = state_dir.resolve()
    log_dir = state_dir / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = suite_environment(os.environ, state_dir)
    for warning in prepare_media(env, state_dir):
        console.print(f"[yellow]{warning}[/]")
    media_root = Path(env["PROCESSING_MEDIA_ROOT"]).expanduser().resolve()
    try:
        grace = Env(env).duration("SHUTDOWN_GRACE", 10.0, "grace period of each process on stop")
        sample = plan_sample(
            os.environ, media_root, no_sample=no_sample, chosen_by=chosen_media_root(os.environ)
        )
    except ConfigError as error:
        raise click.UsageError(str(error)) from None
    leaves = None
    if tls_dir is not None:
        tls_dir = tls_dir.resolve()
        try:
            leaves = suite_certs(tls_dir)
        except FileNotFoundError as error:
            raise click.UsageError(str(error)) from None
    access = prepare_gateway_access(env, state_dir)
    run = Run(env, log_dir, grace, media_root, sample, access, tls_dir, leaves)
    raise SystemExit(asyncio.run(_up(run)))


@cli.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("certs"),
    show_default=True,
    help="Where to write ca.crt/ca.key and <process>.crt/.key.",
)
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True, help="Validity.")
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="Another DNS name every certificate is valid for (repeatable); localhost, 127.0.0.1, ::1 "
    "and the process name are always in.",
)
def certs(directory: Path, days: int, hosts: tuple[str, ...]) -> None:
    """Make a development CA and a certificate for every process and for a client (mutual TLS).

    For development and tests only: the CA key sits beside its certificate. Never commit the
    directory (certs/ is git-ignored). Then: mediasuite up --tls certs

    Example: mediasuite certs --dir certs --days 30
    """
    leaves = make_suite_certs(directory, days=days, hosts=hosts)
    click.echo(f"CA: {directory / 'ca.crt'} (key {directory / 'ca.key'}; keep it private)")
    for name, leaf in leaves.items():
        click.echo(f"{name}: {leaf.cert} {leaf.key}")
    click.echo(f"valid {days} days; start the suite with: mediasuite up --tls {directory}")


def _loaders() -> dict[str, Callable[[Env], object]]:
    from gateway.config import GatewayConfig
    from services.batch.config import BatchConfig
    from services.cache.config import CacheConfig
    from services.monitor.config import MonitorConfig
    from services.processing.config import ProcessingConfig

    return {
        "cache": CacheConfig.from_env,
        "processing": ProcessingConfig.from_env,
        "batch": BatchConfig.from_env,
        "monitor": MonitorConfig.from_env,
        "gateway": GatewayConfig.from_env,
    }


def process_settings() -> dict[str, list[Setting]]:
    """Every environment variable each process reads (telemetry included), by process name."""
    return {name: describe_settings(load, name) for name, load in _loaders().items()}


def configuration_table() -> str:
    """Every environment variable of every process as a Markdown table (the README's table).

    A variable that processes read with different defaults or meanings (REDIS_URL) gets one row
    per reading, next to each other, so no process's default is shown as another's.
    """
    rows: dict[str, dict[Setting, list[str]]] = {}
    settings = process_settings()
    for name, described in settings.items():
        for setting in described:
            default = setting.default.replace(f"mediasuite-{name}", "mediasuite-<process>")
            reading = Setting(setting.name, default, setting.meaning)
            rows.setdefault(setting.name, {}).setdefault(reading, []).append(name)
    lines = ["| variable | default | read by | meaning |", "|---|---|---|---|"]
    for readings in rows.values():
        for setting, users in readings.items():
            read_by = "all" if len(users) == len(settings) else ", ".join(users)
            default = f"`{setting.default}`" if setting.default else "(unset)"
            lines.append(f"| `{setting.name}` | {default} | {read_by} | {setting.meaning} |")
    return "\n".join(lines)


@cli.command()
def config() -> None:
    """Print every environment variable of every process: default, who reads it, meaning (Markdown).

    Example: mediasuite config
    """
    click.echo(configuration_table())


def main() -> None:
    """Console script entry point."""
    cli()
