"""`mediactl trace` reads the spans the runtime's console exporter writes (real SDK output), puts
each trace back together as a tree and finds one by trace id or request id."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

from click.testing import CliRunner
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.cli.mediactl import cli
from services.cli.spans import read_spans, render_trace, traces
from services.runtime.telemetry import console_span_exporter


def _provider(service: str, sink: io.StringIO) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": f"mediasuite-{service}"}))
    provider.add_span_processor(SimpleSpanProcessor(console_span_exporter(sink)))  # what OTEL_..=console uses
    return provider


def _write_request(logs: Path) -> str:
    """A request through gateway -> processing -> cache, each process logging to its own file."""
    sinks = {name: io.StringIO() for name in ("gateway", "processing", "cache")}
    tracers = {name: _provider(name, sink).get_tracer("t") for name, sink in sinks.items()}
    with (
        tracers["gateway"].start_as_current_span(
            "POST /v1/processing:thumbnail",
            kind=SpanKind.SERVER,
            attributes={"http.request.header.x-request-id": ("req-7",)},
        ) as root,
        tracers["processing"].start_as_current_span("/p.Processing/Thumbnail", kind=SpanKind.SERVER),
    ):
        with tracers["processing"].start_as_current_span(
            "processing.run thumbnail", attributes={"processing.pool.queue_wait_ms": 1.25}
        ):
            time.sleep(0.002)
        with tracers["cache"].start_as_current_span(
            "/c.Cache/Set", kind=SpanKind.SERVER, attributes={"rpc.grpc.status_code": 8}
        ) as failed:
            failed.set_status(Status(StatusCode.ERROR))
        with tracers["cache"].start_as_current_span("HMGET HMGET HMGET DEL", kind=SpanKind.CLIENT):
            pass
    for name, sink in sinks.items():
        (logs / f"{name}.log").write_text('{"level": "info", "message": "a log line"}\n' + sink.getvalue())
    return f"{root.get_span_context().trace_id:032x}"


def test_a_request_is_one_tree_across_the_processes_logs(tmp_path: Path) -> None:
    trace_id = _write_request(tmp_path)
    (found,) = traces(read_spans(sorted(tmp_path.glob("*.log"))))
    assert found.trace_id == trace_id
    assert found.request_id == "req-7"
    assert len(found.spans) == 5
    (root,) = found.roots
    assert (root.service, root.kind) == ("gateway", "server")
    lines = render_trace(found)
    assert lines[0].startswith(f"trace {trace_id}: ")
    assert lines[0].endswith("5 spans, request req-7")
    body = [re.sub(r"^\s*[\d.]+ ms\s+[\d.]+ ms  ", "", line) for line in lines[2:]]
    assert body == [
        "gateway     POST /v1/processing:thumbnail (server)",
        "processing    /p.Processing/Thumbnail (server)",
        "processing      processing.run thumbnail (internal)  [queued 1.2 ms]",
        "cache           /c.Cache/Set (server)  [RESOURCE_EXHAUSTED]",
        "cache           HMGET x3, DEL (pipeline) (client)",
    ]


def test_mediactl_trace_finds_it_by_id_or_request_id_and_says_when_there_is_none(tmp_path: Path) -> None:
    trace_id = _write_request(tmp_path)
    runner = CliRunner()
    by_id = runner.invoke(cli, ["trace", "show", trace_id, "--logs", str(tmp_path)])
    by_request = runner.invoke(cli, ["trace", "show", "--request-id", "req-7", "--logs", str(tmp_path)])
    assert by_id.exit_code == 0, by_id.output
    assert by_id.output == by_request.output
    listed = runner.invoke(cli, ["trace", "list", "--slowest", "--logs", str(tmp_path)])
    assert listed.output.startswith(trace_id)
    assert "req-7" in listed.output
    missing = runner.invoke(cli, ["trace", "show", "0" * 32, "--logs", str(tmp_path)])
    assert missing.exit_code == 1
    assert "`mediactl trace list` shows what is there" in missing.output
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = runner.invoke(cli, ["trace", "list", "--logs", str(empty)])
    assert "OTEL_TRACES_EXPORTER=console make run" in nothing.output
