"""The key `mediasuite up` makes for a run (stored hashed, the gateway told to require it) and the
commands it prints to try next."""

from __future__ import annotations

import stat
from pathlib import Path

from gateway.auth import KeyStore, Scope, parse_key_entries
from gateway.config import GatewayConfig
from services.cli.local_access import KEY_ENV, mediactl_command, prepare_gateway_access, try_next
from services.runtime.config import Env


def test_a_new_admin_key_is_stored_only_as_its_digest_and_required_even_on_loopback(tmp_path: Path) -> None:
    env: dict[str, str] = {"GATEWAY_HTTP_LISTEN": "127.0.0.1:8080"}
    access = prepare_gateway_access(env, tmp_path)
    assert access.mode == "generated"
    assert access.key.startswith("msk_")
    keys_file = tmp_path / "gateway" / "api-keys"
    assert env["GATEWAY_API_KEYS_FILE"] == str(keys_file)
    assert env["GATEWAY_AUTH"] == "on"
    text = keys_file.read_text()
    assert access.key not in text
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    principal = KeyStore(parse_key_entries(text, "file")).authenticate(access.key)
    assert principal is not None
    assert principal.scope is Scope.ADMIN
    config = GatewayConfig.from_env(Env(env))
    assert config.auth, "loopback, and still a key is required"
    assert str(keys_file) in access.describe()
    assert access.key not in access.describe()


def test_every_start_makes_a_new_key_and_the_old_one_stops_working(tmp_path: Path) -> None:
    first = prepare_gateway_access({}, tmp_path)
    second = prepare_gateway_access({}, tmp_path)
    store = KeyStore(parse_key_entries((tmp_path / "gateway" / "api-keys").read_text(), "file"))
    assert store.authenticate(second.key) is not None
    assert store.authenticate(first.key) is None


def test_configured_keys_or_auth_off_are_kept(tmp_path: Path) -> None:
    env = {"GATEWAY_API_KEYS": "me:read:sha256:" + "0" * 64}
    access = prepare_gateway_access(env, tmp_path)
    assert access.mode == "configured"
    assert "GATEWAY_API_KEYS_FILE" not in env
    assert "GATEWAY_AUTH" not in env
    off = {"GATEWAY_AUTH": "OFF"}
    assert prepare_gateway_access(off, tmp_path).mode == "open"
    assert off == {"GATEWAY_AUTH": "OFF"}
    assert not (tmp_path / "gateway").exists()


def test_the_commands_name_only_the_addresses_that_are_not_the_defaults(tmp_path: Path) -> None:
    access = prepare_gateway_access({}, tmp_path)
    default = try_next({}, access, sample=True, mediactl="mediactl")
    assert default == [
        "mediactl catalog query --where kind=image --order-by quality --limit 5",
        "mediactl process analyze --remote sample/problems/out-of-focus.jpg",
        f'curl -sS -H "Authorization: Bearer ${KEY_ENV}" http://127.0.0.1:8080/v1/catalog/summary',
    ]
    moved = {"BATCH_ADDR": "127.0.0.1:4001", "GATEWAY_HTTP_LISTEN": "0.0.0.0:9000"}
    commands = try_next(moved, access, sample=True, mediactl=".venv/bin/mediactl")
    assert commands[0].startswith(".venv/bin/mediactl --batch-addr 127.0.0.1:4001 catalog query")
    assert commands[1].startswith(".venv/bin/mediactl process analyze")
    assert commands[2].endswith("http://127.0.0.1:9000/v1/catalog/summary"), "wildcard: reached on loopback"
    open_access = prepare_gateway_access({"GATEWAY_AUTH": "off"}, tmp_path)
    empty = try_next({}, open_access, sample=False, mediactl="m")
    assert empty == ["m health", "m monitor status", "curl -sS http://127.0.0.1:8080/v1/monitor/health"]


def test_mediactl_is_named_as_this_shell_can_run_it(tmp_path: Path) -> None:
    not_on_path = mediactl_command(environ_path=str(tmp_path))
    assert not_on_path.endswith("/mediactl"), "a path when PATH does not have ours"
    ours = Path(not_on_path).resolve()
    assert ours.is_file()
    assert mediactl_command(environ_path=str(ours.parent)) == "mediactl"
