"""How a person reaches the suite ``mediasuite up`` started: the gateway's key for this run, and
three commands to try next that work as printed.

Each start makes a new admin API key, writes only its SHA-256 entry to ``STATE_DIR/gateway/api-keys``
(mode 0600, read by the gateway through ``GATEWAY_API_KEYS_FILE``) and sets ``GATEWAY_AUTH=on``, so
the gateway requires a key even on loopback: a local gateway is reachable by every process and
every user of the machine, and the browser pages of any site could call an open one. The key itself
is printed once and kept nowhere. A user who configured keys (``GATEWAY_API_KEYS``,
``GATEWAY_API_KEYS_FILE``) keeps them; ``GATEWAY_AUTH=off`` keeps the gateway open (loopback only).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from gateway.auth import Scope, hash_key, new_key
from services.runtime.suite import PROCESSES
from services.sample.library import SAMPLE_DIR

__all__ = ["KEY_ENV", "KEY_NAME", "GatewayAccess", "mediactl_command", "prepare_gateway_access", "try_next"]

KEY_NAME = "local-admin"
KEY_ENV = "MEDIASUITE_API_KEY"
_DEFAULT_ADDRESSES = {p.addr_env: p.default_address for p in PROCESSES}
# The sample photo quality analysis calls blurry (services/sample/library.py).
BLURRY_SAMPLE = f"{SAMPLE_DIR}/problems/out-of-focus.jpg"


@dataclass(frozen=True)
class GatewayAccess:
    """How callers authenticate at the gateway in this run."""

    mode: str  # "generated": our key for this run; "configured": the user's keys; "open": GATEWAY_AUTH=off
    key: str = ""
    keys_file: Path | None = None

    def describe(self) -> str:
        """One line for the banner (never the key)."""
        if self.mode == "generated":
            return f"the gateway requires an API key; it keeps only the key's SHA-256 (in {self.keys_file})"
        if self.mode == "configured":
            return "the gateway requires one of your API keys (GATEWAY_API_KEYS / GATEWAY_API_KEYS_FILE)"
        return "the gateway is open: GATEWAY_AUTH=off (allowed on loopback only)"


def prepare_gateway_access(env: dict[str, str], state_dir: Path) -> GatewayAccess:
    """Make this run's admin key unless the user configured keys or turned auth off; sets ``env``."""
    if env.get("GATEWAY_AUTH", "").strip().lower() == "off":
        return GatewayAccess("open")
    if env.get("GATEWAY_API_KEYS") or env.get("GATEWAY_API_KEYS_FILE"):
        return GatewayAccess("configured")
    key = new_key()
    keys_file = state_dir / "gateway" / "api-keys"
    keys_file.parent.mkdir(parents=True, exist_ok=True)
    keys_file.unlink(missing_ok=True)  # a new file, so the mode below is the one it gets
    descriptor = os.open(keys_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as sink:
        sink.write(
            "# written by `mediasuite up` for this run only: the SHA-256 of the key it printed\n"
            f"{KEY_NAME}:{Scope.ADMIN.value}:{hash_key(key)}\n"
        )
    env["GATEWAY_API_KEYS_FILE"] = str(keys_file)
    env.setdefault("GATEWAY_AUTH", "on")
    return GatewayAccess("generated", key, keys_file)


def mediactl_command(environ_path: str | None = None) -> str:
    """How to call this installation's ``mediactl`` from the current directory.

    ``mediactl`` when the one on PATH is ours; otherwise its path (``.venv/bin/mediactl`` in the
    repository after ``make run``).
    """
    ours = Path(sys.executable).parent / "mediactl"
    found = shutil.which(
        "mediactl", path=environ_path if environ_path is not None else os.environ.get("PATH")
    )
    if found and ours.exists() and os.path.samefile(found, ours):
        return "mediactl"
    relative = os.path.relpath(ours)
    return relative if not relative.startswith("..") else str(ours)


def _address_options(env: dict[str, str], processes: tuple[str, ...]) -> str:
    options = []
    for name in processes:
        variable = f"{name.upper()}_ADDR"
        if env.get(variable, _DEFAULT_ADDRESSES[variable]) != _DEFAULT_ADDRESSES[variable]:
            options.append(f"--{name}-addr {shlex.quote(env[variable])}")
    return "".join(f" {option}" for option in options)


def http_base(env: dict[str, str]) -> str:
    """The gateway's URL for a browser or curl on this machine."""
    listen = env.get("GATEWAY_HTTP_LISTEN", "127.0.0.1:8080")
    host, _, port = listen.rpartition(":")
    if host in ("0.0.0.0", "[::]", ""):  # noqa: S104 - a wildcard listen is reached on loopback
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def try_next(env: dict[str, str], access: GatewayAccess, *, sample: bool, mediactl: str) -> list[str]:
    """Three commands that work as printed against this run (two mediactl, one curl)."""
    auth = "" if access.mode == "open" else f'-H "Authorization: Bearer ${KEY_ENV}" '
    if sample:
        commands = [
            f"{mediactl}{_address_options(env, ('batch',))} catalog query --where kind=image "
            "--order-by quality --limit 5",
            f"{mediactl}{_address_options(env, ('processing',))} process analyze --remote {BLURRY_SAMPLE}",
            f"curl -sS {auth}{http_base(env)}/v1/catalog/summary",
        ]
    else:
        commands = [
            f"{mediactl}{_address_options(env, tuple(p.name for p in PROCESSES))} health",
            f"{mediactl}{_address_options(env, ('monitor',))} monitor status",
            f"curl -sS {auth}{http_base(env)}/v1/monitor/health",
        ]
    return commands
