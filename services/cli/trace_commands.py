"""``mediactl trace ...``: the traces of requests, read from the suite's logs (offline).

Start the suite with ``OTEL_TRACES_EXPORTER=console make run``: every process then writes its spans
to its log, one JSON object a line, and these commands put one request's spans back together.
With a tracing backend (OTLP to Jaeger, Tempo ...), use its search instead: the spans are the same.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from services.cli.help import SuiteGroup
from services.cli.spans import Trace, read_spans, render_trace, traces

__all__ = ["trace"]


def _logs_option(func: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--logs",
        type=click.Path(file_okay=False, exists=True, path_type=Path),
        default=lambda: str(Path(os.environ.get("MEDIASUITE_STATE_DIR", "var")) / "log"),
        show_default="$MEDIASUITE_STATE_DIR/log, else var/log",
        help="Directory of the processes' logs (what `mediasuite up` writes).",
    )(func)


def _load(logs: Path) -> list[Trace]:
    found = traces(read_spans(sorted(logs.glob("*.log"))))
    if not found:
        raise click.ClickException(
            f"no spans in {logs}/*.log: start the suite with tracing on, "
            "`OTEL_TRACES_EXPORTER=console make run`, and send a request"
        )
    return found


@click.group(cls=SuiteGroup)
def trace() -> None:
    """Traces of requests, from the logs of a suite started with OTEL_TRACES_EXPORTER=console.

    \b
    Examples:
      mediactl trace list --slowest
      mediactl trace show 4bf92f3577b34da6a3ce929d0e0e4736
    """


@trace.command("list")
@_logs_option
@click.option("--slowest", is_flag=True, help="Slowest first (default: newest first).")
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True, help="Most traces shown.")
def list_traces(logs: Path, slowest: bool, limit: int) -> None:
    """One line per trace: id, duration, spans, the request id and the first span.

    Example: mediactl trace list --slowest --limit 5
    """
    found = _load(logs)
    found.sort(key=(lambda t: t.duration_ms) if slowest else (lambda t: t.start), reverse=True)
    for item in found[:limit]:
        first = min(item.roots, key=lambda s: s.start)
        request = item.request_id or "-"
        count = len(item.spans)
        click.echo(
            f"{item.trace_id}  {item.duration_ms:>8.1f} ms  {count:>3} span{'s' if count != 1 else ' '}  "
            f"{request:<20}  {first.service}: {first.title}"
        )


@trace.command("show")
@click.argument("trace_id", required=False)
@click.option("--request-id", default="", help="Find the trace by the X-Request-Id the gateway returned.")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Seconds to wait for the trace to appear and stop growing (processes write spans in batches).",
)
@_logs_option
def show(trace_id: str | None, request_id: str, wait: float, logs: Path) -> None:
    """One trace as a tree: when each span started, how long it took, in which process.

    Example: mediactl trace show --request-id demo-1 --wait 10
    """
    if not trace_id and not request_id:
        raise click.UsageError("name a TRACE_ID or give --request-id")
    wanted = (trace_id or "").lower().removeprefix("0x")

    def find() -> list[Trace]:
        found = traces(read_spans(sorted(logs.glob("*.log"))))
        by_id = [t for t in found if wanted and t.trace_id == wanted]
        return by_id + [t for t in found if request_id and t.request_id == request_id]

    matches = find()
    deadline = time.monotonic() + wait
    seen = -1
    while time.monotonic() < deadline:  # until present and unchanged for a second
        count = sum(len(t.spans) for t in matches)
        if count and count == seen:
            break
        seen = count
        time.sleep(1.0 if count else 0.25)
        matches = find()
    if not matches:
        what = f"trace {trace_id}" if trace_id else f"request id {request_id!r}"
        raise click.ClickException(
            f"no {what} in {logs}/*.log (spans are written a few seconds after the request: "
            "`mediactl trace list` shows what is there)"
        )
    for index, item in enumerate(sorted(matches, key=lambda t: t.start)):
        if index:
            click.echo("")
        click.echo("\n".join(render_trace(item)))
