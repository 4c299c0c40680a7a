"""Typed configuration read from environment variables, checked once at start.

Every service describes its settings as a frozen dataclass with ``from_env(environ)``; the values
are read through :class:`Env`, which casts and checks each one and raises :class:`ConfigError`
naming the variable, its current value and what it accepts. ``Env`` also records what was read
(name, default, meaning), so the configuration table in the README and ``--help`` are generated
from the code that reads the values, and cannot drift from it.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.runtime.tls import TlsConfig

__all__ = [
    "ConfigError",
    "Env",
    "ServerConfig",
    "Setting",
    "format_duration",
    "parse_bytes",
    "parse_duration",
]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_BYTE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
}
_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


class ConfigError(ValueError):
    """A configuration value is missing or invalid. The message names the variable and the fix."""

    def __init__(self, variable: str, value: str | None, expected: str) -> None:
        self.variable = variable
        self.value = value
        self.expected = expected
        shown = "is not set" if value is None else f"is {value!r}"
        super().__init__(f"{variable} {shown}: expected {expected}")


@dataclass(frozen=True)
class Setting:
    """One environment variable a process reads: for --help and the README's configuration table."""

    name: str
    default: str
    meaning: str


def parse_duration(text: str) -> float:
    """Seconds from "250ms", "30", "30s", "5m", "1h" or "1d"; ValueError otherwise."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * _DURATION_UNITS[(match.group(2) or "s").lower()]


def parse_bytes(text: str) -> int:
    """Bytes from "1024", "64KiB", "8MiB", "1GB" (decimal k/M/G, binary KiB/MiB/GiB)."""
    match = _BYTES.match(text)
    if not match or match.group(2).lower() not in _BYTE_UNITS:
        raise ValueError(text)
    return int(float(match.group(1)) * _BYTE_UNITS[match.group(2).lower()])


class Env:
    """Reads typed values from an environment mapping and remembers what it read.

    Each getter takes the variable's name, its default and a one-line meaning. An empty string
    counts as unset, so ``FOO=`` means "use the default".
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.settings: list[Setting] = []

    def given(self, name: str) -> str | None:
        """The text the environment holds for ``name`` (None when unset or empty): for an error about
        a value checked against another one, which must show what the user wrote."""
        value = self._environ.get(name)
        return value if value not in (None, "") else None

    def _raw(self, name: str, default: str, meaning: str) -> str | None:
        self.settings.append(Setting(name, default, meaning))
        value = self._environ.get(name)
        return value if value not in (None, "") else None

    def text(
        self,
        name: str,
        default: str,
        meaning: str,
        *,
        choices: Sequence[str] | None = None,
        check: Callable[[str], bool] | None = None,
        expected: str = "",
    ) -> str:
        """A text value, optionally one of ``choices`` (case-insensitive) or passing ``check``."""
        if choices:
            meaning = f"{meaning} (one of {', '.join(choices)})"
        raw = self._raw(name, default, meaning)
        if raw is None:
            return default
        if choices is not None:
            lowered = raw.strip().lower()
            if lowered not in [c.lower() for c in choices]:
                raise ConfigError(name, raw, f"one of {', '.join(choices)}")
            return lowered
        if check is not None and not check(raw):
            raise ConfigError(name, raw, expected or "a valid value")
        return raw

    def integer(
        self, name: str, default: int, meaning: str, *, min: int | None = None, max: int | None = None
    ) -> int:
        """A whole number within [min, max]."""
        raw = self._raw(name, str(default), meaning)
        expected = _range_text("a whole number", min, max)
        if raw is None:
            return default
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(name, raw, expected) from None
        if (min is not None and value < min) or (max is not None and value > max):
            raise ConfigError(name, raw, expected)
        return value

    def number(
        self, name: str, default: float, meaning: str, *, min: float | None = None, max: float | None = None
    ) -> float:
        """A decimal number within [min, max]."""
        raw = self._raw(name, f"{default:g}", meaning)
        expected = _range_text("a number", min, max)
        if raw is None:
            return default
        try:
            value = float(raw.strip())
        except ValueError:
            raise ConfigError(name, raw, expected) from None
        if not math.isfinite(value) or (min is not None and value < min) or (max is not None and value > max):
            raise ConfigError(name, raw, expected)
        return value

    def flag(self, name: str, default: bool, meaning: str) -> bool:
        """A strict boolean: true/false, 1/0, yes/no, on/off (anything else is an error)."""
        raw = self._raw(name, "true" if default else "false", meaning)
        if raw is None:
            return default
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(name, raw, "true or false (also 1/0, yes/no, on/off)")

    def duration(
        self,
        name: str,
        default: float,
        meaning: str,
        *,
        min: float | None = 0.0,
        max: float | None = None,
    ) -> float:
        """A duration in seconds, written "250ms", "30", "30s", "5m", "1h" or "1d"."""
        raw = self._raw(name, _duration_text(default), meaning)
        expected = _range_text('a duration such as "250ms", "30s", "5m" or "1h"', min, max, _duration_text)
        if raw is None:
            return default
        try:
            value = parse_duration(raw)
        except ValueError:
            raise ConfigError(name, raw, expected) from None
        if (min is not None and value < min) or (max is not None and value > max):
            raise ConfigError(name, raw, expected)
        return value

    def size(
        self, name: str, default: int, meaning: str, *, min: int | None = 0, max: int | None = None
    ) -> int:
        """A size in bytes, written "1024", "64KiB", "8MiB" or "1GB"."""
        raw = self._raw(name, _bytes_text(default), meaning)
        expected = _range_text('a size such as "1024", "64KiB" or "8MiB"', min, max, _bytes_text)
        if raw is None:
            return default
        try:
            value = parse_bytes(raw)
        except ValueError:
            raise ConfigError(name, raw, expected) from None
        if (min is not None and value < min) or (max is not None and value > max):
            raise ConfigError(name, raw, expected)
        return value

    def address(self, name: str, default: str, meaning: str) -> str:
        """A host:port address ("127.0.0.1:50051", "[::]:50051", "cache:50051", "dns:///processing:50052").

        An empty ``default`` makes the address optional: unset, it reads as "".
        """
        raw = self._raw(name, default, meaning)
        value = default if raw is None else raw.strip()
        if value == "" and default == "":
            return ""
        if not _valid_address(value):
            raise ConfigError(name, value, 'host:port, e.g. "127.0.0.1:50051" or "[::]:50051"')
        return value

    def redis_url(self, name: str, default: str, meaning: str) -> str:
        """A Redis URL: redis://, rediss:// (TLS) or unix://. An empty ``default`` makes it optional."""
        return self.text(
            name,
            default,
            meaning,
            check=lambda v: v.startswith(("redis://", "rediss://", "unix://")),
            expected="a redis://, rediss:// or unix:// URL",
        )

    def path(self, name: str, default: str, meaning: str) -> Path:
        """A file-system path (not checked for existence here; the service decides what it needs)."""
        raw = self._raw(name, default, meaning)
        return Path(default if raw is None else raw).expanduser()


def _range_text(
    kind: str, lo: float | None, hi: float | None, fmt: Callable[[float], str] | None = None
) -> str:
    show = fmt or (lambda v: f"{v:g}")
    if lo is not None and hi is not None:
        return f"{kind} from {show(lo)} to {show(hi)}"
    if lo is not None:
        return f"{kind} of at least {show(lo)}"
    if hi is not None:
        return f"{kind} of at most {show(hi)}"
    return kind


def format_duration(seconds: float) -> str:
    """A duration as the variables write it ("7d", "30s", "250ms"), for messages naming one."""
    return _duration_text(seconds)


def _duration_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if seconds < 1 and seconds > 0:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def _bytes_text(size: float) -> str:
    size = int(size)
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def _valid_address(value: str) -> bool:
    target = value
    for scheme in ("dns:///", "ipv4:", "ipv6:"):
        if target.startswith(scheme):
            target = target[len(scheme) :]
    if "," in target:  # ipv4:a:1,b:2 lists
        return all(_valid_address(part) for part in target.split(","))
    if target.startswith("["):
        host, sep, port = target[1:].partition("]:")
        if not sep:
            return False
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
    else:
        host, sep, port = target.rpartition(":")
        if not sep or not host or not re.fullmatch(r"[A-Za-z0-9.\-_]+", host):
            return False
    return port.isdigit() and 0 <= int(port) <= 65535


@dataclass(frozen=True)
class ServerConfig:
    """Settings every gRPC server of the suite shares: where it listens and how it behaves."""

    service: str
    listen: str
    grace_seconds: float
    drain_seconds: float
    max_message_bytes: int
    keepalive_seconds: float
    client_deadline_seconds: float
    max_concurrent_rpcs: int
    log_level: str
    log_format: str
    health_listen: str = ""
    max_connection_age_seconds: float = 0.0
    tls: TlsConfig | None = None

    @classmethod
    def from_env(cls, env: Env, service: str, default_port: int) -> ServerConfig:
        """Read the shared server settings; ``<SERVICE>_LISTEN`` is per service."""
        from services.runtime.tls import TlsConfig

        prefix = service.upper()
        return cls(
            service=service,
            listen=env.address(
                f"{prefix}_LISTEN",
                f"127.0.0.1:{default_port}",
                f"address the {service} gRPC server listens on",
            ),
            grace_seconds=env.duration(
                "SHUTDOWN_GRACE",
                10.0,
                "on SIGTERM, time in-flight calls get to finish before they are cancelled",
                max=3600,
            ),
            drain_seconds=env.duration(
                "SHUTDOWN_DRAIN",
                0.0,
                "on SIGTERM, time spent reporting NOT_SERVING (still serving) before refusing new calls",
                max=600,
            ),
            max_message_bytes=env.size(
                "GRPC_MAX_MESSAGE_BYTES", 64 * 1024**2, "largest gRPC message received or sent", min=4096
            ),
            keepalive_seconds=env.duration(
                "GRPC_KEEPALIVE", 30.0, "interval of HTTP/2 keepalive pings on idle connections", min=1
            ),
            client_deadline_seconds=env.duration(
                "GRPC_CLIENT_DEADLINE",
                10.0,
                "deadline of calls this process makes to other services when the caller sets none",
                min=0.001,
            ),
            max_concurrent_rpcs=env.integer(
                "GRPC_MAX_CONCURRENT_RPCS",
                1000,
                "calls served at once; more are refused RESOURCE_EXHAUSTED",
                min=1,
            ),
            log_level=env.text(
                "LOG_LEVEL",
                "info",
                "least severe log level written",
                choices=("debug", "info", "warning", "error"),
            ),
            log_format=env.text("LOG_FORMAT", "json", "log line format", choices=("json", "text")),
            health_listen=env.text(
                "GRPC_HEALTH_LISTEN",
                "",
                "extra plaintext address serving only grpc.health.v1 (for Kubernetes probes when TLS is on)",
                check=_valid_address,
                expected='host:port, e.g. "0.0.0.0:8086"',
            ),
            max_connection_age_seconds=env.duration(
                "GRPC_MAX_CONNECTION_AGE",
                0.0,
                "close client connections after this age so clients re-resolve DNS and reach new "
                "replicas (0s: never)",
                max=86400,
            ),
            tls=TlsConfig.from_env(env),
        )
