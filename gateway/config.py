"""Configuration of the gateway, read from the environment at start."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from gateway.auth import ApiKey, KeyFormatError, parse_key_entries
from services.runtime.config import ConfigError, Env, ServerConfig
from services.runtime.suite import PROCESSES, process

__all__ = ["CREDENTIALS", "HOP_BY_HOP", "GatewayConfig"]

# Headers that describe one HTTP connection, never forwarded (RFC 9110 section 7.6.1).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
# Credentials stay at the gateway; the callee learns who called from mediasuite-principal/-scope.
CREDENTIALS = frozenset({"authorization", "x-api-key", "cookie", "proxy-authorization"})
_NEVER_FORWARDED = HOP_BY_HOP | CREDENTIALS


def _is_loopback(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _header_list(text: str) -> tuple[str, ...]:
    return tuple(sorted({h.strip().lower() for h in text.split(",") if h.strip()}))


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the gateway process reads from its environment."""

    server: ServerConfig
    http_listen: str
    upstreams: dict[str, str]
    auth: bool
    keys: tuple[ApiKey, ...]
    max_body_bytes: int
    max_deadline_seconds: float
    cors_origins: tuple[str, ...]
    forward_headers: tuple[str, ...]
    json_proto_names: bool
    json_emit_defaults: bool
    sse_keepalive_seconds: float
    rate_limit: float = 0.0
    rate_burst: int = 1

    @classmethod
    def from_env(cls, env: Env) -> GatewayConfig:
        """Read and check every variable; ConfigError names the first one at fault."""
        server = ServerConfig.from_env(env, "gateway", process("gateway").port)
        http_listen = env.address(
            "GATEWAY_HTTP_LISTEN", "127.0.0.1:8080", "address the HTTP gateway listens on"
        )
        upstreams = {
            p.name: env.address(p.addr_env, p.default_address, f"address of the {p.name} service for clients")
            for p in PROCESSES
            if p.name != "gateway"
        }
        keys = _read_keys(env)
        auth_mode = env.text(
            "GATEWAY_AUTH",
            "auto",
            "require an API key: auto = when keys are configured (and always off loopback)",
            choices=("auto", "on", "off"),
        )
        if auth_mode == "on" and not keys:
            raise ConfigError(
                "GATEWAY_AUTH", "on", "keys in GATEWAY_API_KEYS or GATEWAY_API_KEYS_FILE when auth is on"
            )
        if auth_mode == "auto" and not keys and not _is_loopback(http_listen):
            raise ConfigError(
                "GATEWAY_API_KEYS",
                None,
                f"API keys when GATEWAY_HTTP_LISTEN ({http_listen}) is not a loopback address "
                "(make one with `mediactl gateway new-key`), "
                "or GATEWAY_AUTH=off to serve without authentication",
            )
        forward = _header_list(
            env.text(
                "GATEWAY_FORWARD_HEADERS",
                "accept-language,traceparent,tracestate,baggage,user-agent",
                "HTTP headers forwarded to services as gRPC metadata (comma-separated; hop-by-hop never)",
            )
        )
        refused = sorted(set(forward) & _NEVER_FORWARDED)
        if refused:
            raise ConfigError(
                "GATEWAY_FORWARD_HEADERS",
                ",".join(forward),
                f"headers other than hop-by-hop ones and credentials "
                f"({', '.join(refused)} are never forwarded)",
            )
        origins = tuple(
            o.strip().rstrip("/")
            for o in env.text(
                "GATEWAY_CORS_ORIGINS",
                "",
                'origins allowed to call the API from a browser ("https://a.example,https://b.example", "*")',
            ).split(",")
            if o.strip()
        )
        for origin in origins:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ConfigError(
                    "GATEWAY_CORS_ORIGINS", origin, 'origins such as "https://app.example" or "*"'
                )
        return cls(
            server=server,
            http_listen=http_listen,
            upstreams=upstreams,
            auth=auth_mode == "on" or (auth_mode == "auto" and bool(keys)),
            keys=tuple(keys),
            max_body_bytes=env.size(
                "GATEWAY_MAX_BODY_BYTES",
                32 * 1024**2,
                "largest HTTP request body accepted (413 above it)",
                min=1024,
            ),
            max_deadline_seconds=env.duration(
                "GATEWAY_MAX_DEADLINE",
                300.0,
                "longest deadline a caller may ask for with the Grpc-Timeout header",
                min=0.001,
            ),
            cors_origins=origins,
            forward_headers=forward,
            json_proto_names=env.text(
                "GATEWAY_JSON_NAMES",
                "camel",
                "field names in JSON responses: camel (lowerCamelCase) or proto (snake_case)",
                choices=("camel", "proto"),
            )
            == "proto",
            json_emit_defaults=env.flag(
                "GATEWAY_JSON_EMIT_DEFAULTS",
                True,
                "write fields that hold their default value in JSON responses",
            ),
            sse_keepalive_seconds=env.duration(
                "GATEWAY_SSE_KEEPALIVE", 15.0, "interval of keep-alive comments on idle event streams", min=1
            ),
            rate_limit=env.number(
                "GATEWAY_RATE_LIMIT",
                1000.0,
                "requests per second each API key (or client address, without keys) may make on average; "
                "more are 429 with Retry-After (0: no limit)",
                min=0,
                max=1e6,
            ),
            rate_burst=env.integer(
                "GATEWAY_RATE_BURST",
                2000,
                "requests an API key (or client address) may make at once above GATEWAY_RATE_LIMIT",
                min=1,
                max=10_000_000,
            ),
        )


def _read_keys(env: Env) -> list[ApiKey]:
    inline = env.text(
        "GATEWAY_API_KEYS",
        "",
        "API keys as name:scope:sha256:<hex> entries, comma-separated (hashes only, never keys)",
    )
    path = env.text(
        "GATEWAY_API_KEYS_FILE", "", "file of API key entries, one name:scope:sha256:<hex> a line"
    )
    keys: list[ApiKey] = []
    try:
        keys.extend(parse_key_entries(inline, "GATEWAY_API_KEYS"))
    except KeyFormatError as error:
        raise ConfigError("GATEWAY_API_KEYS", "(not shown)", str(error)) from None
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError("GATEWAY_API_KEYS_FILE", path, f"a readable file ({error.strerror})") from None
        try:
            keys.extend(parse_key_entries(text, path))
        except KeyFormatError as error:
            raise ConfigError("GATEWAY_API_KEYS_FILE", path, str(error)) from None
    names = [k.name for k in keys]
    if len(set(names)) != len(names):
        raise ConfigError("GATEWAY_API_KEYS_FILE", path, "key names distinct from those in GATEWAY_API_KEYS")
    return keys
