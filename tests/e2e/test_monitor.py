"""The monitor as a real process: OTLP from another real process, health of real suite processes
stopped and restarted, a bad rules file refused at start, `mediactl monitor`, and `mediasuite up`
wiring every service's metrics to it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import grpc
import psutil
import pytest
from google.protobuf.duration_pb2 import Duration

from mediasuite.cache.v1 import cache_service_pb2, cache_service_pb2_grpc
from mediasuite.monitor.v1 import monitor_service_pb2 as pb
from mediasuite.monitor.v1 import monitor_service_pb2_grpc
from tests.support.processes import (
    BIN,
    base_env,
    free_port,
    service_process,
    spawn,
    start_suite,
    suite_env,
    wait_serving,
)

T = TypeVar("T")

EXPORTER = """
import sys
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=sys.argv[1], insecure=True))
provider = MeterProvider(resource=Resource.create({"service.name": "synthetic"}), metric_readers=[reader])
provider.get_meter("e2e").create_observable_gauge(
    "synthetic.queue_depth", [lambda options: [Observation(17.0, {"queue": "thumbnails"})]], unit="{item}"
)
provider.shutdown()  # collects and exports once
"""


def _eventually(check: Callable[[], T | None], timeout: float = 30.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found is not None:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}")


def _stub(address: str) -> monitor_service_pb2_grpc.MonitorServiceStub:
    return monitor_service_pb2_grpc.MonitorServiceStub(grpc.insecure_channel(address))


def test_a_gauge_exported_by_another_process_shows_in_history(tmp_path: Path) -> None:
    with service_process("monitor", tmp_path, MONITOR_CHECK="none") as monitor:
        subprocess.run(
            [sys.executable, "-c", EXPORTER, monitor.address], check=True, timeout=60, env=base_env()
        )
        stub = _stub(monitor.address)
        window = Duration(seconds=600)
        reply = stub.GetHistory(
            pb.GetHistoryRequest(metric="synthetic.queue_depth", window=window), timeout=5
        )
    (series,) = reply.series
    assert dict(series.labels) == {"queue": "thumbnails", "service": "synthetic"}
    assert [p.avg for p in series.points] == [17.0]


def _health(stub: monitor_service_pb2_grpc.MonitorServiceStub) -> pb.GetHealthResponse:
    reply: pb.GetHealthResponse = stub.GetHealth(pb.GetHealthRequest(), timeout=5)
    return reply


@pytest.mark.fault
def test_stopping_a_suite_process_lowers_the_score_naming_it_restarting_restores_it(tmp_path: Path) -> None:
    cache_address = f"127.0.0.1:{free_port()}"
    cache_env = base_env(CACHE_LISTEN=cache_address)
    cache = spawn([str(BIN / "mediasuite-cache")], cache_env, tmp_path / "cache1.log", cache_address)
    wait_serving(cache)
    try:
        with service_process(
            "monitor", tmp_path, MONITOR_CHECK="cache", CACHE_ADDR=cache_address, MONITOR_SAMPLE_INTERVAL="1s"
        ) as monitor:
            stub = _stub(monitor.address)
            before = _eventually(lambda: r if (r := _health(stub)).score == 100 else None, what="score 100")
            assert [(c.name, c.serving) for c in before.components] == [("cache", True)]
            assert before.status == pb.HEALTH_STATUS_EXCELLENT

            assert cache.stop() == 0
            down = _eventually(lambda: r if (r := _health(stub)).score < 100 else None, what="score drop")
            assert down.score == 70
            assert down.status == pb.HEALTH_STATUS_FAIR
            (component,) = down.components
            assert (component.name, component.serving) == ("cache", False)
            assert component.detail.startswith("UNAVAILABLE")
            assert down.deductions[0].startswith("-30 cache not serving")

            cache = spawn([str(BIN / "mediasuite-cache")], cache_env, tmp_path / "cache2.log", cache_address)
            wait_serving(cache)
            again = _eventually(lambda: r if (r := _health(stub)).score == 100 else None, what="score back")
            assert again.components[0].serving
            cli = subprocess.run(
                [str(BIN / "mediactl"), "--monitor-addr", monitor.address, "monitor", "status", "--json"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
                env=base_env(),
            )
            assert json.loads(cli.stdout)["score"] == 100
    finally:
        cache.stop()


def test_a_malformed_rules_file_stops_the_monitor_with_exit_2_naming_the_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - name: cpu\n    metric: system.cpu.percent\n    thresholds: {warning: hot}\n"
    )
    result = subprocess.run(
        [str(BIN / "mediasuite-monitor")],
        env=base_env(MONITOR_RULES_FILE=str(rules)),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert f"{rules}, line 4: thresholds.warning must be a number, not 'hot'" in result.stderr
    assert "MONITOR_RULES_FILE" in result.stderr


def test_mediactl_monitor_commands_against_a_real_monitor(tmp_path: Path) -> None:
    with service_process("monitor", tmp_path, MONITOR_CHECK="none") as monitor:

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(BIN / "mediactl"), "--monitor-addr", monitor.address, "monitor", *args],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
                env=base_env(COLUMNS="200"),
            )

        status = run("status")
        assert status.returncode == 0, status.stderr
        assert "health 100/100 excellent" in status.stdout
        assert run("alerts").stdout.strip() == "no active alerts"
        report = run("report", "--hours", "2")
        assert report.returncode == 0, report.stderr
        assert "system.memory.percent" in report.stdout
        watch = run("watch", "--once", "--interval", "1")
        assert watch.returncode == 0, watch.stderr
        assert "memory" in watch.stdout
        assert "monitor" in watch.stdout  # its own process row
        bad = run("report", "--hours", "25")
        assert bad.returncode == 2
        assert "25 is not in the range 1<=x<=24" in bad.stderr
    gone = subprocess.run(
        [str(BIN / "mediactl"), "--monitor-addr", monitor.address, "monitor", "status"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert gone.returncode == 1
    assert "Is the suite running" in gone.stderr


@pytest.mark.slow
def test_mediasuite_up_sends_every_service_metrics_to_the_monitor(tmp_path: Path) -> None:
    env = suite_env(tmp_path / "state", OTEL_METRIC_EXPORT_INTERVAL="500", MONITOR_SAMPLE_INTERVAL="1s")
    up = start_suite(env, tmp_path / "up.out")
    try:
        stub = _stub(env["MONITOR_ADDR"])
        _eventually(
            lambda: r if (r := _health_or_none(stub)) is not None and r.score == 100 else None, 60, "suite up"
        )
        with grpc.insecure_channel(env["CACHE_ADDR"]) as channel:
            cache = cache_service_pb2_grpc.CacheServiceStub(channel)
            for _ in range(20):
                reply = cache.Get(cache_service_pb2.GetRequest(namespace="thumbnail", key="k"), timeout=5)
                assert not reply.found

        def cache_get_calls() -> dict[str, float] | None:
            reply = stub.GetCurrentMetrics(pb.GetCurrentMetricsRequest(prefix="rpc.server."), timeout=5)
            found = {
                s.name: s.value
                for s in reply.samples
                if s.labels.get("service") == "cache"
                and s.labels.get("method") == "/mediasuite.cache.v1.CacheService/Get"
            }
            return found if "rpc.server.latency.p95" in found else None

        found = _eventually(cache_get_calls, 30, "cache Get metrics in the monitor")
        assert found["rpc.server.latency.p95"] > 0
        services = {
            s.labels["service"]
            for s in stub.GetCurrentMetrics(
                pb.GetCurrentMetricsRequest(prefix="rpc.server.calls"), timeout=5
            ).samples
        }
        assert {"cache", "processing", "batch", "gateway", "monitor"} <= services
        traces = [
            line
            for line in (tmp_path / "state" / "log" / "cache.log").read_text().splitlines()
            if "telemetry:" in line
        ]
        assert "traces none, metrics otlp" in traces[0]
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        for child in psutil.Process().children(recursive=True):
            child.kill()


def _health_or_none(stub: monitor_service_pb2_grpc.MonitorServiceStub) -> pb.GetHealthResponse | None:
    try:
        return _health(stub)
    except grpc.RpcError:
        return None
