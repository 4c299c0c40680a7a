"""Typed configuration: every bad value is refused with the variable, the value and what it accepts."""

from __future__ import annotations

import pytest

from services.runtime.config import ConfigError, Env, ServerConfig, parse_bytes, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("30", 30.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1.5s", 1.5),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"), [("1024", 1024), ("64KiB", 65536), ("8MiB", 8 * 1024**2), ("1GB", 10**9)]
)
def test_sizes(text: str, size: int) -> None:
    assert parse_bytes(text) == size


def test_defaults_apply_when_unset_or_empty() -> None:
    config = ServerConfig.from_env(Env({"SHUTDOWN_GRACE": ""}), "cache", 50051)
    assert config.listen == "127.0.0.1:50051"
    assert config.grace_seconds == 10.0
    assert config.max_message_bytes == 64 * 1024**2


def test_values_are_cast() -> None:
    env = Env(
        {
            "CACHE_LISTEN": "[::]:9000",
            "SHUTDOWN_GRACE": "2m",
            "GRPC_MAX_MESSAGE_BYTES": "4MiB",
            "LOG_LEVEL": "DEBUG",
        }
    )
    config = ServerConfig.from_env(env, "cache", 50051)
    assert (config.listen, config.grace_seconds, config.max_message_bytes, config.log_level) == (
        "[::]:9000",
        120.0,
        4 * 1024**2,
        "debug",
    )


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CACHE_LISTEN", "localhost", "host:port"),
        ("CACHE_LISTEN", "127.0.0.1:99999", "host:port"),
        ("SHUTDOWN_GRACE", "soon", "a duration"),
        ("SHUTDOWN_GRACE", "-1s", "a duration"),
        ("GRPC_MAX_MESSAGE_BYTES", "12 parsecs", "a size"),
        ("GRPC_MAX_MESSAGE_BYTES", "10", "at least 4KiB"),
        ("GRPC_MAX_CONCURRENT_RPCS", "0", "at least 1"),
        ("GRPC_MAX_CONCURRENT_RPCS", "many", "a whole number"),
        ("LOG_LEVEL", "loud", "one of debug, info, warning, error"),
    ],
)
def test_bad_values_name_variable_value_and_expectation(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ServerConfig.from_env(Env({variable: value}), "cache", 50051)
    message = str(caught.value)
    assert caught.value.variable == variable
    assert message.startswith(f"{variable} is {value!r}: expected ")
    assert expected in message


@pytest.mark.parametrize("raw", ["true", "1", "YES", "on"])
def test_booleans_true(raw: str) -> None:
    assert Env({"X": raw}).flag("X", False, "x") is True


@pytest.mark.parametrize("raw", ["false", "0", "no", "OFF"])
def test_booleans_false(raw: str) -> None:
    assert Env({"X": raw}).flag("X", True, "x") is False


@pytest.mark.parametrize("raw", ["maybe", "2", "enabled", "tru"])
def test_booleans_are_strict(raw: str) -> None:
    with pytest.raises(ConfigError, match="expected true or false"):
        Env({"X": raw}).flag("X", False, "x")


def test_env_records_every_setting_with_default_and_meaning() -> None:
    env = Env({})
    ServerConfig.from_env(env, "batch", 50053)
    names = {s.name: s for s in env.settings}
    assert names["BATCH_LISTEN"].default == "127.0.0.1:50053"
    assert names["SHUTDOWN_GRACE"].default == "10s"
    assert all(s.meaning for s in env.settings)


def test_an_address_with_an_empty_default_is_optional_but_checked_when_set() -> None:
    assert Env({}).address("PEER_ADDR", "", "a peer") == ""
    assert Env({"PEER_ADDR": " "}).address("PEER_ADDR", "", "a peer") == ""
    assert Env({"PEER_ADDR": "peer:8086"}).address("PEER_ADDR", "", "a peer") == "peer:8086"
    with pytest.raises(ConfigError, match="PEER_ADDR is 'peer': expected host:port"):
        Env({"PEER_ADDR": "peer"}).address("PEER_ADDR", "", "a peer")


def test_a_redis_url_takes_the_three_schemes_and_an_empty_default_makes_it_optional() -> None:
    for url in ("redis://h:6379/0", "rediss://:pw@h:6380/1", "unix:///run/redis.sock"):
        assert Env({"REDIS_URL": url}).redis_url("REDIS_URL", "", "Redis") == url
    assert Env({}).redis_url("REDIS_URL", "", "Redis") == ""
    assert Env({}).redis_url("REDIS_URL", "redis://127.0.0.1:6379/0", "Redis") == "redis://127.0.0.1:6379/0"
    with pytest.raises(
        ConfigError, match="REDIS_URL is 'http://h': expected a redis://, rediss:// or unix:// URL"
    ):
        Env({"REDIS_URL": "http://h"}).redis_url("REDIS_URL", "", "Redis")
