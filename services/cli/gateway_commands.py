"""``mediactl gateway``: API keys for the HTTP gateway, and its routes and OpenAPI document.

These work offline: keys are made and hashed locally, routes come from the same annotations the
gateway reads at start.
"""

from __future__ import annotations

import json
import sys

import click

from gateway.auth import Scope, hash_key, new_key
from gateway.openapi import build_openapi
from gateway.protodocs import docs_for
from gateway.routes import build_routes, suite_services
from services.cli.help import Choice, SuiteGroup

__all__ = ["gateway"]


@click.group(cls=SuiteGroup)
def gateway() -> None:
    """HTTP gateway: API keys, route table, OpenAPI.

    \b
    Examples:
      mediactl gateway new-key --name ci --scope read
      mediactl gateway routes
    """


@gateway.command("new-key")
@click.option(
    "--name", required=True, help="Name of the key, shown in logs and sent to services as the caller."
)
@click.option(
    "--scope",
    type=Choice([s.value for s in Scope]),
    default=Scope.READ.value,
    show_default=True,
    help="read: every route that changes nothing; admin: everything.",
)
def new_key_command(name: str, scope: str) -> None:
    """Make a random API key; print the key (once) and the entry to configure.

    The gateway stores only the entry (a SHA-256 digest): put it in GATEWAY_API_KEYS
    (comma-separated) or a line of GATEWAY_API_KEYS_FILE, and hand the key to its user.

    Example: mediactl gateway new-key --name dashboard --scope read
    """
    key = new_key()
    click.echo(f"key (give it to the caller; it is not stored anywhere): {key}", err=True)
    click.echo(f"{name}:{scope}:{hash_key(key)}")


@gateway.command("hash-key")
@click.option("--name", required=True, help="Name of the key.")
@click.option("--scope", type=Choice([s.value for s in Scope]), default=Scope.READ.value, show_default=True)
def hash_key_command(name: str, scope: str) -> None:
    """Read an existing key from standard input and print its configuration entry.

    Example: printf %s "$KEY" | mediactl gateway hash-key --name ci --scope admin
    """
    key = sys.stdin.read().strip()
    if not key:
        raise click.ClickException('no key on standard input: pipe the key in, e.g. printf %s "$KEY" | ...')
    click.echo(f"{name}:{scope}:{hash_key(key)}")


@gateway.command()
def routes() -> None:
    """Print the HTTP route table generated from the protos' google.api.http annotations.

    Example: mediactl gateway routes | grep monitor
    """
    click.echo(build_routes(suite_services()).describe())


@gateway.command()
@click.option(
    "--auth/--no-auth", default=True, show_default=True, help="Document the API-key security schemes."
)
def openapi(auth: bool) -> None:
    """Print the OpenAPI 3.1 document the gateway serves at /openapi.json.

    Example: mediactl gateway openapi > openapi.json
    """
    upstreams = suite_services()
    document = build_openapi(build_routes(upstreams), auth=auth, docs=docs_for(u.service for u in upstreams))
    click.echo(json.dumps(document, indent=2))
