"""Certificates for TLS tests: the suite's own generator (``services/cli/certs.py``, the code behind
``make certs``), in a test's temporary directory. Nothing here is ever committed or reused.

``expired_leaf`` makes a certificate signed by the right CA whose validity ended yesterday.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from services.cli import certs as _certs
from services.cli.certs import Leaf

__all__ = ["Leaf", "expired_leaf", "make_ca", "make_leaf"]


def make_ca(directory: Path, name: str = "ca") -> Path:
    """A self-signed CA certificate (its key beside it as <name>.key), good for one day."""
    return _certs.make_ca(directory, name, days=1)


def make_leaf(ca: Path, name: str) -> Leaf:
    """A server-and-client certificate for localhost/127.0.0.1 signed by ``ca``, good for one day."""
    return _certs.make_leaf(ca, name, days=1)


def expired_leaf(ca: Path, name: str) -> Leaf:
    """A certificate signed by ``ca`` that expired a day ago (valid for a day before that)."""
    now = datetime.datetime.now(datetime.UTC)
    return _certs.make_leaf(
        ca, name, not_before=now - datetime.timedelta(days=2), not_after=now - datetime.timedelta(days=1)
    )
