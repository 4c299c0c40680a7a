"""Prometheus text exposition (format 0.0.4) of the latest value of every series, over HTTP.

Names become Prometheus names: every character outside [a-zA-Z0-9_:] becomes "_"
(``system.cpu.percent`` -> ``system_cpu_percent``); every metric is a gauge (counters arrive here
already turned into rates). The page is rebuilt only when a sample arrived since the last scrape.

The HTTP side is a minimal asyncio server (GET or HEAD /metrics, one request per connection,
8 KiB of request head at most, 10 s to send it) rather than a web framework: a framework's
server would wake up several times a second even when nobody scrapes, which is the monitor's own
overhead budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re

from services.monitor.series import SeriesStore

__all__ = ["MetricsHttpServer", "exposition", "prometheus_name"]

log = logging.getLogger("mediasuite.monitor.http")

_INVALID = re.compile(r"[^a-zA-Z0-9_:]")
_MAX_HEAD = 8192
_READ_TIMEOUT = 10.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def prometheus_name(name: str) -> str:
    """A valid Prometheus metric or label name for ``name``."""
    cleaned = _INVALID.sub("_", name)
    return f"_{cleaned}" if cleaned[:1].isdigit() else cleaned


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def exposition(store: SeriesStore) -> str:
    """The text page for the latest values in the store."""
    lines: list[str] = []
    for name in sorted(store.metrics):
        descriptor = store.metrics[name]
        if not descriptor.series:
            continue
        metric = prometheus_name(name)
        help_text = descriptor.description or name
        if descriptor.unit:
            help_text = f"{help_text} ({descriptor.unit})"
        lines.append(f"# HELP {metric} {_help(help_text)}")
        lines.append(f"# TYPE {metric} gauge")
        for labels in sorted(descriptor.series):
            series = descriptor.series[labels]
            if labels:
                inner = ",".join(f'{prometheus_name(k)}="{_escape(v)}"' for k, v in labels)
                lines.append(f"{metric}{{{inner}}} {_value(series.value)}")
            else:
                lines.append(f"{metric} {_value(series.value)}")
    return "\n".join(lines) + "\n"


class MetricsHttpServer:
    """Serves /metrics for Prometheus scrapers."""

    def __init__(self, store: SeriesStore, listen: str) -> None:
        self._store = store
        self._listen = listen
        self._server: asyncio.Server | None = None
        self._page = b""
        self._version = -1
        self.port = 0

    @property
    def address(self) -> str:
        """host:port actually bound."""
        return f"{self._listen.rpartition(':')[0]}:{self.port}"

    async def start(self) -> None:
        """Listen (OSError naming the address when it is taken)."""
        host, _, port = self._listen.rpartition(":")
        host = host.strip("[]")
        try:
            self._server = await asyncio.start_server(self._handle, host, int(port), limit=_MAX_HEAD)
        except OSError as error:
            raise OSError(
                f"cannot listen on {self._listen} for /metrics ({error.strerror or error}): "
                "set MONITOR_HTTP_LISTEN to a free address"
            ) from error
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("Prometheus metrics on http://%s/metrics", self.address)

    async def stop(self) -> None:
        """Stop listening and close connections."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(OSError):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    def page(self) -> bytes:
        """The exposition, rebuilt only when the store changed."""
        if self._store.version != self._version:
            self._page = exposition(self._store).encode()
            self._version = self._store.version
        return self._page

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
            method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
            path = rest.partition(" ")[0].partition("?")[0]
            if method not in ("GET", "HEAD"):
                status, body, ctype = "405 Method Not Allowed", b"only GET and HEAD\n", "text/plain"
            elif path != "/metrics":
                status, body, ctype = (
                    "404 Not Found",
                    b"not found: the metrics are at /metrics\n",
                    "text/plain",
                )
            else:
                status, body, ctype = "200 OK", self.page(), CONTENT_TYPE
            header = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
            writer.write(header if method == "HEAD" else header + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
