"""``mediactl monitor``: the suite's health, live metrics, alerts and reports from the monitor service."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.json_format import MessageToDict
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from mediasuite.monitor.v1 import monitor_service_pb2 as pb
from mediasuite.monitor.v1 import monitor_service_pb2_grpc
from services.cli.help import Choice, SuiteGroup

__all__ = ["monitor"]

console = Console(highlight=False)

_LEVEL_STYLE = {
    pb.ALERT_LEVEL_INFO: "cyan",
    pb.ALERT_LEVEL_WARNING: "yellow",
    pb.ALERT_LEVEL_CRITICAL: "red",
    pb.ALERT_LEVEL_EMERGENCY: "bold red",
}
_STATUS_STYLE = {
    "EXCELLENT": "green",
    "GOOD": "green",
    "FAIR": "yellow",
    "POOR": "red",
    "CRITICAL": "bold red",
}
# The figures `watch` shows at the top, in order, when the monitor has them.
_MAIN = (
    ("system.cpu.percent", "CPU"),
    ("system.memory.percent", "memory"),
    ("system.swap.percent", "swap"),
    ("system.load.1m", "load 1m"),
    ("system.disk.read.rate", "disk read"),
    ("system.disk.write.rate", "disk write"),
    ("system.network.receive.rate", "net in"),
    ("system.network.send.rate", "net out"),
)


def _level_name(level: int) -> str:
    return pb.AlertLevel.Name(level).removeprefix("ALERT_LEVEL_")  # type: ignore[arg-type]


def _status_name(status: int) -> str:
    return pb.HealthStatus.Name(status).removeprefix("HEALTH_STATUS_")  # type: ignore[arg-type]


def _value(value: float, unit: str) -> str:
    if unit in ("By/s", "By"):
        for suffix, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if abs(value) >= size:
                return f"{value / size:.1f} {suffix}{'/s' if unit == 'By/s' else ''}"
        return f"{value:.0f} B{'/s' if unit == 'By/s' else ''}"
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "ms":
        return f"{value:.2f} ms"
    return f"{value:.4g}" + (f" {unit}" if unit not in ("", "1") else "")


@contextmanager
def _stub(ctx: click.Context) -> Iterator[tuple[monitor_service_pb2_grpc.MonitorServiceStub, float]]:
    address: str = ctx.obj.addresses["monitor"]
    timeout: float = ctx.obj.timeout
    with ctx.obj.channel(address) as channel:
        try:
            yield monitor_service_pb2_grpc.MonitorServiceStub(channel), timeout
        except grpc.RpcError as error:
            code = error.code()
            details = error.details()
            hint = ""
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                hint = (
                    " Is the suite running (`make run`)? Is the address right (--monitor-addr, MONITOR_ADDR)?"
                )
            raise click.ClickException(f"monitor at {address}: {code.name}: {details}.{hint}") from None


def _health_table(health: pb.GetHealthResponse) -> Table:
    status = _status_name(health.status)
    style = _STATUS_STYLE.get(status, "white")
    table = Table(title=f"health [{style}]{health.score:.0f}/100 {status.lower()}[/]", title_justify="left")
    for column in ("component", "address", "state", "detail", "latency"):
        table.add_column(column, justify="right" if column == "latency" else "left")
    for c in health.components:
        state = "[green]serving[/]" if c.serving else "[red]down[/]"
        latency = c.latency.seconds * 1000 + c.latency.nanos / 1e6
        table.add_row(c.name, c.target, state, c.detail, f"{latency:.1f} ms")
    return table


def _alerts_table(alerts: Any, title: str = "active alerts") -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("level", "alert", "value", "threshold", "since", "message"):
        table.add_column(column)
    for a in alerts:
        style = _LEVEL_STYLE.get(a.level, "white")
        since = a.since.ToDatetime().strftime("%H:%M:%S")
        table.add_row(
            f"[{style}]{_level_name(a.level)}[/]",
            a.id,
            f"{a.value:.4g}",
            f"{a.threshold:.4g}",
            since,
            a.message,
        )
    return table


@click.group(cls=SuiteGroup)
def monitor() -> None:
    """Health, live metrics, alerts and reports from the monitor service.

    \b
    Examples:
      mediactl monitor status
      mediactl monitor watch --interval 2
      mediactl monitor alerts --events
      mediactl monitor report --hours 6
    """


@monitor.command()
@click.option("--json", "as_json", is_flag=True, help="Print the health response as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """The suite's health score, each component's state and why points were taken off.

    Exit code 1 when the status is poor or critical.

    Example: mediactl monitor status
    """
    with _stub(ctx) as (stub, timeout):
        health = stub.GetHealth(pb.GetHealthRequest(), timeout=timeout)
    if as_json:
        click.echo(json.dumps(MessageToDict(health), indent=2))
    else:
        console.print(_health_table(health))
        for line in health.deductions:
            console.print(f"  {line}")
        if health.active_alerts:
            counts = ", ".join(f"{n} {level}" for level, n in sorted(health.active_alerts.items()))
            console.print(f"active alerts: {counts} (see `mediactl monitor alerts`)")
    if health.status in (pb.HEALTH_STATUS_POOR, pb.HEALTH_STATUS_CRITICAL):
        raise SystemExit(1)


@monitor.command()
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Seconds between updates (the monitor bounds it; 1-60 s by default).",
)
@click.option("--prefix", default="", help="Also list every series whose name starts with this.")
@click.option("--once", is_flag=True, help="Draw one frame and exit (for scripts).")
@click.pass_context
def watch(ctx: click.Context, interval: float, prefix: str, once: bool) -> None:
    """A live view of the main metrics, the health score and the active alerts (Ctrl-C stops it).

    Example: mediactl monitor watch --interval 1 --prefix rpc.server.latency.p95
    """
    with _stub(ctx) as (stub, timeout):
        step = Duration()
        step.FromNanoseconds(int(interval * 1e9))
        stream = stub.StreamMetrics(pb.StreamMetricsRequest(interval=step))
        try:
            with Live(console=console, auto_refresh=False, transient=once) as live:
                for snapshot in stream:
                    health = stub.GetHealth(pb.GetHealthRequest(), timeout=timeout)
                    alerts = stub.GetActiveAlerts(pb.GetActiveAlertsRequest(), timeout=timeout)
                    live.update(_frame(snapshot, health, alerts, prefix), refresh=True)
                    if once:
                        break
            if once:
                console.print(_frame(snapshot, health, alerts, prefix))
        except KeyboardInterrupt:
            pass
        finally:
            stream.cancel()  # type: ignore[no-untyped-call]


def _frame(
    snapshot: pb.StreamMetricsResponse,
    health: pb.GetHealthResponse,
    alerts: pb.GetActiveAlertsResponse,
    prefix: str,
) -> Group:
    by_name: dict[str, list[pb.MetricSample]] = {}
    for s in snapshot.samples:
        by_name.setdefault(s.name, []).append(s)
    main = Table(title=f"mediasuite at {snapshot.time.ToDatetime():%H:%M:%S} UTC", title_justify="left")
    for name, label in _MAIN:
        if name in by_name:
            main.add_column(label, justify="right")
    main.add_row(*(_value(by_name[n][0].value, by_name[n][0].unit) for n, _ in _MAIN if n in by_name))
    parts: list[Any] = [main, _health_table(health)]
    procs = Table(title="processes", title_justify="left")
    for column in ("process", "CPU", "RSS", "open files"):
        procs.add_column(column, justify="left" if column == "process" else "right")
    values: dict[str, dict[str, pb.MetricSample]] = {}
    for metric in ("process.cpu.percent", "process.rss", "process.open_fds"):
        for s in by_name.get(metric, []):
            values.setdefault(s.labels.get("process", "?"), {})[metric] = s
    for proc, found in sorted(values.items()):
        cells = [
            _value(found[m].value, found[m].unit) if m in found else "-"
            for m in ("process.cpu.percent", "process.rss", "process.open_fds")
        ]
        procs.add_row(proc, *cells)
    parts.append(procs)
    if prefix:
        listed = Table(title=f"series {prefix}*", title_justify="left")
        listed.add_column("series")
        listed.add_column("value", justify="right")
        for s in snapshot.samples:
            if s.name.startswith(prefix):
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                listed.add_row(f"{s.name}{{{labels}}}" if labels else s.name, _value(s.value, s.unit))
        parts.append(listed)
    parts.append(_alerts_table(alerts.alerts))
    if snapshot.dropped_snapshots:
        parts.append(f"[yellow]{snapshot.dropped_snapshots} update(s) skipped: this terminal was slow[/]")
    return Group(*parts)


@monitor.command()
@click.option(
    "--level",
    type=Choice(["info", "warning", "critical", "emergency"], case_sensitive=False),
    default="info",
    show_default=True,
    help="Only alerts at or above this level.",
)
@click.option("--events", is_flag=True, help="List recent alert events (fired, escalated, ...) instead.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="Events to list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def alerts(ctx: click.Context, level: str, events: bool, limit: int, as_json: bool) -> None:
    """The active alerts, most severe first (or the recent alert events with --events).

    Example: mediactl monitor alerts --level warning
    """
    min_level = pb.AlertLevel.Value(f"ALERT_LEVEL_{level.upper()}")
    with _stub(ctx) as (stub, timeout):
        if events:
            found = stub.ListAlertEvents(
                pb.ListAlertEventsRequest(min_level=min_level, page_size=limit), timeout=timeout
            )
            if as_json:
                click.echo(json.dumps(MessageToDict(found), indent=2))
                return
            table = Table(title="alert events, newest first", title_justify="left")
            for column in ("#", "time", "event", "level", "alert", "message"):
                table.add_column(column)
            for e in found.events:
                shown = e.alert.level or e.previous_level
                style = _LEVEL_STYLE.get(shown, "white")
                table.add_row(
                    str(e.sequence),
                    e.time.ToDatetime().strftime("%H:%M:%S"),
                    pb.AlertEventKind.Name(e.kind).removeprefix("ALERT_EVENT_KIND_").lower(),
                    f"[{style}]{_level_name(e.alert.level) if e.alert.level else 'resolved'}[/]",
                    e.alert.id,
                    e.alert.message,
                )
            console.print(table)
            return
        active = stub.GetActiveAlerts(pb.GetActiveAlertsRequest(min_level=min_level), timeout=timeout)
    if as_json:
        click.echo(json.dumps(MessageToDict(active), indent=2))
    elif not active.alerts:
        console.print("no active alerts")
    else:
        console.print(_alerts_table(active.alerts))


@monitor.command()
@click.option(
    "--hours", type=click.IntRange(1, 24), default=1, show_default=True, help="Length of the period."
)
@click.option("--prefix", default="system.", show_default=True, help="Series to summarize (name prefix).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@click.pass_context
def report(ctx: click.Context, hours: int, prefix: str, as_json: bool) -> None:
    """A performance report of the last N hours: per series min/avg/max/p95, alerts, slowest RPCs.

    Example: mediactl monitor report --hours 24
    """
    with _stub(ctx) as (stub, timeout):
        found = stub.GetReport(pb.GetReportRequest(hours=hours), timeout=max(timeout, 30))
    if as_json:
        click.echo(json.dumps(MessageToDict(found), indent=2))
        return
    start = getattr(found, "from").ToDatetime()
    series = Table(
        title=f"report {start:%Y-%m-%d %H:%M} - {found.to.ToDatetime():%H:%M} UTC", title_justify="left"
    )
    for column in ("series", "min", "avg", "max", "p95"):
        series.add_column(column, justify="left" if column == "series" else "right")
    for s in found.series:
        if not s.metric.startswith(prefix):
            continue
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        name = f"{s.metric}{{{labels}}}" if labels else s.metric
        series.add_row(name, *(_value(v, s.unit) for v in (s.min, s.avg, s.max, s.p95)))
    console.print(series)
    counts = ", ".join(f"{n} {level}" for level, n in sorted(found.alerts_by_level.items())) or "none"
    console.print(f"alerts fired or escalated: {counts}")
    if found.slowest_methods:
        slow = Table(title="slowest RPC methods (p95)", title_justify="left")
        for column in ("service", "method", "p95", "p99", "calls", "errors"):
            slow.add_column(column, justify="left" if column in ("service", "method") else "right")
        for m in found.slowest_methods:
            slow.add_row(
                m.service,
                m.method,
                f"{m.p95_ms:.2f} ms",
                f"{m.p99_ms:.2f} ms",
                str(m.calls),
                f"{m.error_rate:.1%}",
            )
        console.print(slow)
