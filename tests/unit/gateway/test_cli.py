"""mediactl gateway: keys made offline work with the gateway's key store; routes print."""

from __future__ import annotations

from click.testing import CliRunner

from gateway.auth import KeyStore, Scope, parse_key_entries
from services.cli.mediactl import cli


def test_new_key_prints_a_key_and_an_entry_that_matches_it() -> None:
    result = CliRunner().invoke(cli, ["gateway", "new-key", "--name", "ci", "--scope", "admin"])
    assert result.exit_code == 0, result.output
    key = result.stderr.rsplit(": ", 1)[1].strip()
    entry = result.stdout.strip()
    assert key not in entry
    principal = KeyStore(parse_key_entries(entry, "test")).authenticate(key)
    assert principal is not None
    assert principal.name == "ci"
    assert principal.scope is Scope.ADMIN


def test_hash_key_reads_stdin_and_refuses_nothing() -> None:
    result = CliRunner().invoke(cli, ["gateway", "hash-key", "--name", "x"], input="secret-key\n")
    assert result.exit_code == 0
    assert KeyStore(parse_key_entries(result.stdout, "test")).authenticate("secret-key") is not None
    result = CliRunner().invoke(cli, ["gateway", "hash-key", "--name", "x"], input="")
    assert result.exit_code == 1
    assert "pipe the key in" in result.output


def test_routes_and_openapi_print() -> None:
    routes = CliRunner().invoke(cli, ["gateway", "routes"])
    assert (
        "GET    /v1/monitor/metrics:current -> mediasuite.monitor.v1.MonitorService.GetCurrentMetrics (read)"
        in routes.stdout
    )
    openapi = CliRunner().invoke(cli, ["gateway", "openapi"])
    assert '"openapi": "3.1.0"' in openapi.stdout
