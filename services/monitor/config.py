"""Configuration of the monitor service, read from the environment at start.

Where the monitor checks each suite process's grpc.health.v1: at ``<NAME>_HEALTH_ADDR`` when set,
in plaintext (the process's health-only port, GRPC_HEALTH_LISTEN: what Kubernetes uses, where
mTLS is on and the NetworkPolicies let the monitor reach only that port); otherwise at the
process's main address ``<NAME>_ADDR``, over mutual TLS when the monitor's own GRPC_TLS_* are set
(the suite's servers then refuse plaintext), in plaintext when not (``mediasuite up``).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.monitor.alerts import Rule
from services.monitor.rules import DEFAULT_RULES, RulesError, load_rules
from services.runtime.config import ConfigError, Env, ServerConfig
from services.runtime.suite import PROCESSES, process
from services.runtime.tls import TlsConfig

__all__ = ["HealthTarget", "MonitorConfig"]

_CHECKED = tuple(p.name for p in PROCESSES if p.name != "monitor")


def _names(value: str) -> bool:
    names = [n.strip() for n in value.split(",") if n.strip()]
    return value.strip().lower() == "none" or all(n in _CHECKED for n in names)


@dataclass(frozen=True)
class HealthTarget:
    """Where the monitor checks one process's grpc.health.v1, and whether over mutual TLS."""

    address: str
    tls: TlsConfig | None = None


@dataclass(frozen=True)
class MonitorConfig:
    """Everything the monitor process reads from its environment."""

    server: ServerConfig
    sample_interval: float
    series_limit: int
    http_listen: str
    rules: tuple[Rule, ...]
    rules_source: str
    stream_min_interval: float
    stream_max_interval: float
    stream_buffer: int
    alert_history: int
    stale_after: float
    health_timeout: float
    otlp_max_points: int
    components: dict[str, HealthTarget]
    addresses: dict[str, str]
    redis_url: str

    @classmethod
    def from_env(cls, env: Env) -> MonitorConfig:
        """Read and check every variable; ConfigError names the first one at fault."""
        server = ServerConfig.from_env(env, "monitor", process("monitor").port)
        sample_interval = env.duration(
            "MONITOR_SAMPLE_INTERVAL",
            5.0,
            "how often the monitor samples the system with psutil",
            min=1,
            max=60,
        )
        series_limit = env.integer(
            "MONITOR_SERIES_LIMIT",
            1000,
            "most metric series held (each keeps 1 h of samples and 24 h of 1-minute roll-ups); "
            "new series beyond are dropped and counted",
            min=10,
            max=100_000,
        )
        http_listen = env.address(
            "MONITOR_HTTP_LISTEN", "127.0.0.1:9464", "address of the monitor's Prometheus /metrics endpoint"
        )
        rules_path = env.path(
            "MONITOR_RULES_FILE", "", "alert rules file (YAML or JSON); unset: the defaults"
        )
        rules, source = DEFAULT_RULES, "defaults"
        if str(rules_path) not in ("", "."):
            try:
                rules, source = load_rules(rules_path), str(rules_path)
            except RulesError as error:
                raise ConfigError(
                    "MONITOR_RULES_FILE", str(rules_path), f"a valid rules file ({error})"
                ) from None
        stream_min = env.duration(
            "MONITOR_STREAM_MIN_INTERVAL",
            1.0,
            "shortest StreamMetrics interval a caller may ask",
            min=0.1,
            max=60,
        )
        stream_max = env.duration(
            "MONITOR_STREAM_MAX_INTERVAL",
            60.0,
            "longest StreamMetrics interval a caller may ask",
            min=1,
            max=3600,
        )
        if stream_max < stream_min:
            raise ConfigError(
                "MONITOR_STREAM_MAX_INTERVAL",
                env.given("MONITOR_STREAM_MAX_INTERVAL") or f"{stream_max:g}s",
                f"at least MONITOR_STREAM_MIN_INTERVAL ({env.given('MONITOR_STREAM_MIN_INTERVAL') or '1s'})",
            )
        checked = env.text(
            "MONITOR_CHECK",
            ",".join(_CHECKED),
            "suite processes whose grpc.health.v1 status counts in the health score (comma list, or none)",
            check=_names,
            expected=f"a comma list of {', '.join(_CHECKED)}, or none",
        )
        names = (
            [] if checked.strip().lower() == "none" else [n.strip() for n in checked.split(",") if n.strip()]
        )
        # The monitor is not its own client: it reads the other processes' addresses only.
        addresses = {
            p.name: env.address(p.addr_env, p.default_address, f"address of the {p.name} service for clients")
            for p in PROCESSES
            if p.name != "monitor"
        }
        health_addresses = {
            name: env.address(
                f"{name.upper()}_HEALTH_ADDR",
                "",
                f"plaintext health-only address of {name} (its GRPC_HEALTH_LISTEN) for the monitor's "
                f"checks; unset: {name.upper()}_ADDR, over mTLS when GRPC_TLS_* are set",
            )
            for name in _CHECKED
        }
        return cls(
            server=server,
            sample_interval=sample_interval,
            series_limit=series_limit,
            http_listen=http_listen,
            rules=rules,
            rules_source=source,
            stream_min_interval=stream_min,
            stream_max_interval=stream_max,
            stream_buffer=env.integer(
                "MONITOR_STREAM_BUFFER",
                256,
                "alert events queued per StreamAlerts caller; a slower caller gets drops, counted",
                min=1,
                max=100_000,
            ),
            alert_history=env.integer(
                "MONITOR_ALERT_HISTORY",
                10_000,
                "alert events kept for ListAlertEvents and reports",
                min=100,
                max=1_000_000,
            ),
            stale_after=env.duration(
                "MONITOR_STALE_AFTER", 300.0, "an alert whose series sends nothing this long resolves", min=1
            ),
            health_timeout=env.duration(
                "MONITOR_HEALTH_TIMEOUT",
                1.0,
                "deadline of each health check of a component",
                min=0.05,
                max=60,
            ),
            otlp_max_points=env.integer(
                "MONITOR_OTLP_MAX_POINTS",
                50_000,
                "most data points one OTLP Export may carry; a larger one is refused RESOURCE_EXHAUSTED",
                min=100,
                max=10_000_000,
            ),
            components={
                name: HealthTarget(health_addresses[name])
                if health_addresses[name]
                else HealthTarget(addresses[name], server.tls)
                for name in dict.fromkeys(names)
            },
            addresses=addresses,
            redis_url=env.text(
                "REDIS_URL",
                "",
                "Redis whose PING counts in the monitor's health score (redis://host:6379/0); "
                "unset: not checked",
                check=lambda v: v.startswith(("redis://", "rediss://", "unix://")),
                expected="a redis://, rediss:// or unix:// URL",
            ),
        )

    @property
    def process_addresses(self) -> dict[str, str]:
        """Processes whose RSS, open files and CPU are sampled (found by the port they listen on)."""
        return dict(self.addresses)
