"""Traces read back from the suite's logs: the spans each process writes with
``OTEL_TRACES_EXPORTER=console`` (one JSON object a line, see services/runtime/telemetry.py),
assembled into trees per trace, for ``mediactl trace``.

No collector is needed on one machine: ``OTEL_TRACES_EXPORTER=console make run`` and every
process's log (``STATE_DIR/log/<process>.log``) holds its spans next to its log lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc

__all__ = ["Span", "Trace", "read_spans", "render_trace", "traces"]

_GRPC_CODES = {code.value[0]: code.name for code in grpc.StatusCode}


@dataclass
class Span:
    """One finished span, as a process exported it."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str  # server, client, internal, ...
    service: str
    start: float  # seconds since the epoch
    end: float
    error: bool
    attributes: dict[str, Any]
    children: list[Span] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        """How long it took."""
        return (self.end - self.start) * 1000

    def notes(self) -> str:
        """What matters about it beyond name and time: a failure's status, queueing, the request id."""
        out = []
        code = self.attributes.get("rpc.grpc.status_code")
        if isinstance(code, int) and code:
            out.append(_GRPC_CODES.get(code, f"status {code}"))
        elif self.error:
            out.append("ERROR")
        wait = self.attributes.get("processing.pool.queue_wait_ms")
        if isinstance(wait, int | float):
            out.append(f"queued {wait:.1f} ms")
        return ", ".join(out)

    @property
    def title(self) -> str:
        """Its name, a Redis pipeline's ("HMGET HMGET ... DEL") shortened to "HMGET x38, DEL"."""
        words = self.name.split()
        if len(words) < 2 or not all(w.isupper() for w in words):
            return self.name
        runs: list[list[str]] = []
        for word in words:
            if runs and runs[-1][0] == word:
                runs[-1].append(word)
            else:
                runs.append([word])
        return ", ".join(run[0] if len(run) == 1 else f"{run[0]} x{len(run)}" for run in runs) + " (pipeline)"


@dataclass
class Trace:
    """The spans of one trace found in the logs, as trees (roots: spans whose parent is not there)."""

    trace_id: str
    spans: list[Span]
    roots: list[Span]

    @property
    def start(self) -> float:
        """When its first span started."""
        return min(s.start for s in self.spans)

    @property
    def duration_ms(self) -> float:
        """From its first span's start to its last span's end."""
        return (max(s.end for s in self.spans) - self.start) * 1000

    @property
    def request_id(self) -> str:
        """The gateway's X-Request-Id of it, when it came through the gateway."""
        for span in self.spans:
            found = span.attributes.get("http.request.header.x-request-id")
            if found:
                return str(found[0] if isinstance(found, list) else found)
        return ""


def _seconds(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _span(data: dict[str, Any]) -> Span:
    resource = data.get("resource", {}).get("attributes", {})
    return Span(
        trace_id=data["context"]["trace_id"].removeprefix("0x"),
        span_id=data["context"]["span_id"].removeprefix("0x"),
        parent_id=(data.get("parent_id") or "").removeprefix("0x"),
        name=data["name"],
        kind=str(data.get("kind", "")).removeprefix("SpanKind.").lower(),
        service=str(resource.get("service.name", "?")).removeprefix("mediasuite-"),
        start=_seconds(data["start_time"]),
        end=_seconds(data["end_time"]),
        error=data.get("status", {}).get("status_code") == "ERROR",
        attributes=dict(data.get("attributes") or {}),
    )


def read_spans(paths: Iterable[Path]) -> Iterator[Span]:
    """Every span line in these files (log lines and anything else are skipped)."""
    for path in paths:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if not line.startswith('{"name": '):
                    continue
                try:
                    data = json.loads(line)
                    yield _span(data)
                except (ValueError, KeyError, TypeError):
                    continue


def traces(spans: Iterable[Span]) -> list[Trace]:
    """The spans grouped by trace, each trace's spans linked into trees, children in start order."""
    by_trace: dict[str, list[Span]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    found = []
    for trace_id, members in by_trace.items():
        by_id = {s.span_id: s for s in members}
        roots: list[Span] = []
        for span in sorted(members, key=lambda s: s.start):
            parent = by_id.get(span.parent_id)
            (parent.children if parent is not None else roots).append(span)
        found.append(Trace(trace_id, members, roots))
    return found


def render_trace(trace: Trace) -> list[str]:
    """The trace as text lines: start offset, duration, process, the span tree, notes."""
    start = trace.start
    request = f", request {trace.request_id}" if trace.request_id else ""
    lines = [
        f"trace {trace.trace_id}: {trace.duration_ms:.1f} ms, {len(trace.spans)} spans{request}",
        f"{'start':>9} {'took':>9}  {'process':<11} span",
    ]

    def walk(span: Span, depth: int) -> None:
        notes = span.notes()
        lines.append(
            f"{(span.start - start) * 1000:>6.1f} ms {span.duration_ms:>6.1f} ms  {span.service:<11} "
            f"{'  ' * depth}{span.title} ({span.kind})" + (f"  [{notes}]" if notes else "")
        )
        for child in span.children:
            walk(child, depth + 1)

    for root in trace.roots:
        walk(root, 0)
    return lines
