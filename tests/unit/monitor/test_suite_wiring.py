"""`mediasuite up` points every service's metrics at the monitor and leaves traces off."""

from __future__ import annotations

from pathlib import Path

from services.cli.suite import suite_environment
from services.runtime.config import Env
from services.runtime.telemetry import TelemetryConfig


def test_metrics_go_to_the_monitor_and_traces_stay_off(tmp_path: Path) -> None:
    env = suite_environment({"MONITOR_LISTEN": "127.0.0.1:6000"}, tmp_path)
    assert env["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] == "http://127.0.0.1:6000"
    assert env["OTEL_METRIC_EXPORT_INTERVAL"] == "5000"
    assert (
        env["OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION"]
        == "base2_exponential_bucket_histogram"
    )
    config = TelemetryConfig.from_env(Env(env), "mediasuite-cache", env)
    assert (config.metrics_exporter, config.traces_exporter) == ("otlp", "none")


def test_what_the_user_configured_wins(tmp_path: Path) -> None:
    env = suite_environment(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://m:1",
        },
        tmp_path,
    )
    assert env["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] == "http://m:1"
    config = TelemetryConfig.from_env(Env(env), "mediasuite-cache", env)
    assert (config.metrics_exporter, config.traces_exporter) == ("otlp", "otlp")
