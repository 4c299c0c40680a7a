"""Every configuration error names its variable, says the value it found and what it accepts, for
every variable of every process: each is set to values no setting takes, and whatever refuses one
must say so completely."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services.cli.suite import _loaders, process_settings
from services.runtime.config import ConfigError, Env
from services.runtime.telemetry import TelemetryConfig

NASTY = ("§bogus§", "-5", "99999999999999999999", "1.5.5", "0")
SECRET = {"GATEWAY_API_KEYS"}  # entries may be pasted keys: the value is never echoed

SETTINGS = sorted({(name, s.name) for name, settings in process_settings().items() for s in settings})


def _load(process: str, environ: dict[str, str]) -> None:
    loader: Callable[[Env], object] = _loaders()[process]
    env = Env(environ)
    loader(env)
    TelemetryConfig.from_env(env, f"mediasuite-{process}", environ)


def _check(error: ConfigError, variable: str, value: str) -> None:
    message = str(error)
    assert error.variable in message
    assert "expected " in message, message
    assert error.expected, message
    assert error.expected != "a valid value", f"{variable}: says what it accepts: {message}"
    if error.variable == variable:
        shown = "(not shown)" if variable in SECRET else value
        assert f"{variable} is {shown!r}" in message, message


# Free text, paths and names: any of the nasty values is a value they take.
FREE = ("_ROOT", "_NAME", "_PREFIX", "_FILE", "_HEADERS", "ENDPOINT", "_CHECK", "_ORIGINS", "_NAMESPACES")


@pytest.mark.parametrize(("process", "variable"), SETTINGS)
def test_a_refused_value_is_named_with_what_is_accepted(process: str, variable: str) -> None:
    refused = 0
    for value in NASTY:
        try:
            _load(process, {variable: value})
        except ConfigError as error:
            refused += 1
            _check(error, variable, value)
    if refused == 0:
        assert variable.endswith(FREE), f"{variable} accepts all of {NASTY}"


DISAGREEMENTS = [
    (
        {"GRPC_TLS_CERT": "/tls/crt"},
        "GRPC_TLS_KEY",
        "GRPC_TLS_KEY is not set: expected a file path (GRPC_TLS_CERT=/tls/crt is set): "
        "set all of GRPC_TLS_CERT, GRPC_TLS_KEY, GRPC_TLS_CA or none",
    ),
    (
        {"CACHE_MAX_VALUE_BYTES": "64MiB"},
        "CACHE_MAX_VALUE_BYTES",
        "CACHE_MAX_VALUE_BYTES is '64MiB': expected at most GRPC_MAX_MESSAGE_BYTES minus 64KiB",
    ),
    (
        {"PROCESSING_PRESETS": "huge=9000"},
        "PROCESSING_PRESETS",
        "PROCESSING_PRESETS is 'huge=9000': expected edges up to PROCESSING_MAX_OUTPUT_DIMENSION=8192 (huge)",
    ),
    ({"GATEWAY_AUTH": "on"}, "GATEWAY_AUTH", "GATEWAY_AUTH is 'on': expected keys in GATEWAY_API_KEYS"),
    (
        {"GATEWAY_HTTP_LISTEN": "0.0.0.0:8080"},
        "GATEWAY_API_KEYS",
        "GATEWAY_API_KEYS is not set: expected API keys when GATEWAY_HTTP_LISTEN (0.0.0.0:8080) is not a "
        "loopback address",
    ),
    (
        {"MONITOR_STREAM_MIN_INTERVAL": "30s", "MONITOR_STREAM_MAX_INTERVAL": "10s"},
        "MONITOR_STREAM_MAX_INTERVAL",
        "MONITOR_STREAM_MAX_INTERVAL is '10s': expected at least MONITOR_STREAM_MIN_INTERVAL (30s)",
    ),
]


@pytest.mark.parametrize(("environ", "variable", "says"), DISAGREEMENTS)
def test_a_value_that_disagrees_with_another_names_both(
    environ: dict[str, str], variable: str, says: str
) -> None:
    errors = []
    for process in _loaders():
        try:
            _load(process, environ)
        except ConfigError as error:
            errors.append(error)
    assert errors
    assert {e.variable for e in errors} == {variable}
    assert any(says in str(e) for e in errors), [str(e) for e in errors]
