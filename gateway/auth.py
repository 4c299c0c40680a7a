"""Who may call what: API keys stored hashed, two scopes, and the scope each route needs.

Keys are random tokens (``mediactl gateway new-key`` makes one). Configuration holds only their
SHA-256 digests, as ``name:scope:sha256:<hex>`` entries, so a leaked configuration does not leak
a key; because keys are 256-bit random values, a fast hash is enough (no password stretching). A
presented key is hashed and compared with every stored digest in constant time.

Scopes: ``read`` may call every route that changes nothing; ``admin`` may call everything.
A route needs ``admin`` when its HTTP method changes state (POST, PUT, PATCH, DELETE), except the
RPCs in :data:`READ_ONLY_RPCS`, which use POST only because their request has a body.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "READ_ONLY_RPCS",
    "ApiKey",
    "KeyFormatError",
    "KeyStore",
    "Principal",
    "RedactCredentials",
    "Scope",
    "hash_key",
    "new_key",
    "parse_key_entries",
    "redact",
    "scope_for",
]

READ_ONLY_RPCS: frozenset[str] = frozenset(
    {
        # Reads that carry their (long) arguments in a body.
        "mediasuite.cache.v1.CacheService.GetMany",
        "mediasuite.batch.v1.CatalogService.QueryItems",
        # Processing never changes a source or the catalog: it reads media and returns (or stores,
        # content-addressed and idempotently) derived outputs.
        *(
            f"mediasuite.processing.v1.ProcessingService.{name}"
            for name in (
                "Probe",
                "ProbeMany",
                "Thumbnail",
                "Convert",
                "Optimize",
                "AnalyzeQuality",
                "Enhance",
                "Crop",
                "Watermark",
                "ProbeVideo",
                "VideoThumbnail",
                "ValidateVideo",
                "ExtractFrames",
            )
        ),
    }
)

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9_.@-]{1,64}):(?P<scope>[a-z]+):sha256:(?P<hex>[0-9a-fA-F]{64})$")
KEY_PREFIX = "msk_"


class Scope(enum.StrEnum):
    """What a key may do; admin includes read."""

    READ = "read"
    ADMIN = "admin"

    def allows(self, needed: Scope) -> bool:
        """Whether a key with this scope may call a route that needs ``needed``."""
        return self is Scope.ADMIN or needed is Scope.READ


def scope_for(http_method: str, rpc_full_name: str) -> Scope:
    """The scope a route needs, from its HTTP method and the read-only list."""
    if http_method.upper() in _SAFE_METHODS or rpc_full_name in READ_ONLY_RPCS:
        return Scope.READ
    return Scope.ADMIN


class KeyFormatError(ValueError):
    """A configured key entry is malformed; the message says which and what the form is."""


@dataclass(frozen=True)
class ApiKey:
    """One configured key: a name for logs, its scope and the SHA-256 digest of the key."""

    name: str
    scope: Scope
    digest: bytes


@dataclass(frozen=True)
class Principal:
    """The caller a request was authenticated as."""

    name: str
    scope: Scope


def hash_key(key: str) -> str:
    """The digest form stored in configuration: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A new random key (256 bits, URL-safe, with a recognisable prefix)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def parse_key_entries(text: str, source: str) -> list[ApiKey]:
    """Entries separated by commas or new lines; blank lines and ``#`` comments are skipped."""
    keys: list[ApiKey] = []
    for number, line in enumerate(text.replace(",", "\n").splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        match = _ENTRY.match(entry)
        if match is None:
            shown = entry.split(":", 1)[0][:64]  # never echo the rest: it may be a pasted key
            raise KeyFormatError(
                f"{source}: entry {number} (named {shown!r}) is not name:scope:sha256:<64 hex digits>; "
                "make one with `mediactl gateway new-key --name NAME --scope read|admin`"
            )
        try:
            scope = Scope(match.group("scope"))
        except ValueError:
            raise KeyFormatError(
                f"{source}: entry {number} has scope {match.group('scope')!r}; expected read or admin"
            ) from None
        keys.append(ApiKey(match.group("name"), scope, bytes.fromhex(match.group("hex"))))
    names = [k.name for k in keys]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise KeyFormatError(f"{source}: key names must be unique; repeated: {', '.join(duplicates)}")
    return keys


class KeyStore:
    """The configured keys; looks a presented key up in constant time."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._keys = tuple(keys)

    def __len__(self) -> int:
        return len(self._keys)

    def authenticate(self, presented: str) -> Principal | None:
        """The principal whose key this is, or None. Every stored digest is compared, match or not."""
        digest = hashlib.sha256(presented.encode()).digest()
        found: ApiKey | None = None
        for key in self._keys:
            if hmac.compare_digest(digest, key.digest):
                found = key
        return None if found is None else Principal(found.name, found.scope)


_SECRETS = (
    # WebSocket keys travel as the subprotocol "bearer.<key>"; HTTP ones as "Bearer <key>".
    (re.compile(r"(?i)\b(bearer)[.\s]+[^\s,;\"'\\]+"), r"\1 <redacted>"),
    (
        re.compile(r"(?i)\b(authorization|x-api-key|cookie|proxy-authorization)(\"?\s*[:=]\s*)[^\n\"]+"),
        r"\1\2<redacted>",
    ),
    (re.compile(re.escape(KEY_PREFIX) + r"[A-Za-z0-9_\-]{6,}"), KEY_PREFIX + "<redacted>"),
)


def redact(text: str) -> str:
    """``text`` with every credential it may hold replaced by ``<redacted>``."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RedactCredentials(logging.Filter):
    """A log filter that removes keys from records before they are written.

    The gateway never logs a key itself, but libraries may at debug level (the WebSocket handshake
    logs every request header, the subprotocol ``bearer.<key>`` included).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message when it holds a credential; never drop a record."""
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
