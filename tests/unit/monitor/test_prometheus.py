"""Prometheus text exposition: valid names, escaped labels, served over real HTTP."""

from __future__ import annotations

import asyncio

from services.monitor.prometheus import MetricsHttpServer, exposition, prometheus_name
from services.monitor.series import SeriesStore


def _store() -> SeriesStore:
    store = SeriesStore(5.0, 10)
    store.describe("system.cpu.percent", "%", "CPU busy", "psutil")
    store.record("system.cpu.percent", (), 12.5, 100.0)
    store.record("rpc.server.latency.p95", (("method", '/a.B/"C"\n'), ("service", "cache")), 0.25, 100.0)
    return store


def test_names_and_escaping() -> None:
    assert prometheus_name("rpc.server.latency.p95") == "rpc_server_latency_p95"
    assert prometheus_name("9lives-x") == "_9lives_x"
    text = exposition(_store())
    assert (
        "# HELP system_cpu_percent CPU busy (%)\n# TYPE system_cpu_percent gauge\nsystem_cpu_percent 12.5\n"
        in text
    )
    assert 'rpc_server_latency_p95{method="/a.B/\\"C\\"\\n",service="cache"} 0.25\n' in text


async def _get(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


async def test_http_serves_metrics_404_elsewhere_405_for_post() -> None:
    server = MetricsHttpServer(_store(), "127.0.0.1:0")
    await server.start()
    try:
        ok = await _get(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert ok.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Content-Type: text/plain; version=0.0.4" in ok
        assert ok.endswith(b"system_cpu_percent 12.5\n")
        missing = await _get(server.port, b"GET /other HTTP/1.1\r\n\r\n")
        assert missing.startswith(b"HTTP/1.1 404")
        post = await _get(server.port, b"POST /metrics HTTP/1.1\r\n\r\n")
        assert post.startswith(b"HTTP/1.1 405")
        head = await _get(server.port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
        assert head.endswith(b"\r\n\r\n")
        assert await _get(server.port, b"GET /metrics HTTP/1.1\r\n" + b"X: " + b"y" * 10_000) == b""
    finally:
        await server.stop()
