"""Namespaces of the cache and their TTL policies.

Each namespace has a default TTL (used when a Set gives none), a maximum TTL (a Set may ask for
less, never more) and a freshness flag (entries are checked against their source file on every
Get). The defaults come from the original system; a TOML file (``CACHE_NAMESPACES_FILE``) and a
compact environment value (``CACHE_NAMESPACES="thumbnail=12h,reports=10m/1h"``) change them or add
namespaces. The environment wins over the file, the file over the defaults.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from services.runtime.config import parse_duration
from services.runtime.errors import InvalidArgument, NotFound

__all__ = [
    "DEFAULT_POLICIES",
    "NamespacePolicy",
    "Namespaces",
    "parse_namespace_spec",
    "read_namespace_file",
]

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MAX_TTL_SECONDS = 365 * 86400.0


@dataclass(frozen=True, slots=True)
class NamespacePolicy:
    """The TTL policy of one namespace (seconds)."""

    name: str
    default_ttl: float
    max_ttl: float
    freshness_checked: bool = False

    def ttl_ms(self, requested: float | None, field: str = "ttl") -> int:
        """The TTL to store with, in milliseconds: the default, or a shorter one the caller asked for.

        A TTL that is not positive, or longer than the namespace's maximum, is an InvalidArgument
        naming ``field``.
        """
        if requested is None:
            return int(self.default_ttl * 1000)
        if requested < 0.001:
            raise InvalidArgument(f"{field} must be at least 1ms (got {requested:g}s)", field=field)
        if requested > self.max_ttl:
            raise InvalidArgument(
                f"{field} of {requested:g}s exceeds the maximum of namespace {self.name!r} "
                f"({self.max_ttl:g}s); ask for {self.max_ttl:g}s or less",
                field=field,
            )
        return int(requested * 1000)


_HOUR = 3600.0
DEFAULT_POLICIES: tuple[NamespacePolicy, ...] = (
    NamespacePolicy("media_metadata", 24 * _HOUR, 24 * _HOUR, freshness_checked=True),
    NamespacePolicy("image_analysis", _HOUR, _HOUR),
    NamespacePolicy("video_analysis", _HOUR, _HOUR),
    NamespacePolicy("thumbnail", 24 * _HOUR, 24 * _HOUR),
    NamespacePolicy("format_conversion", 30 * 60.0, 30 * 60.0),
    NamespacePolicy("quality_analysis", _HOUR, _HOUR),
    NamespacePolicy("collection_summary", 30 * 60.0, 30 * 60.0),
    NamespacePolicy("bulk_operation_result", 15 * 60.0, 15 * 60.0),
)


class Namespaces:
    """The configured namespaces, looked up by name on every call."""

    def __init__(self, policies: Iterable[NamespacePolicy]) -> None:
        self._policies = {p.name: p for p in policies}
        if not self._policies:
            raise ValueError("at least one namespace is needed")

    def __iter__(self) -> Any:
        return iter(self._policies.values())

    def __len__(self) -> int:
        return len(self._policies)

    @property
    def names(self) -> list[str]:
        """Every namespace name, in configuration order."""
        return list(self._policies)

    def get(self, name: str, field: str = "namespace") -> NamespacePolicy:
        """The policy of ``name``; NotFound listing the known namespaces otherwise."""
        try:
            return self._policies[name]
        except KeyError:
            pass
        if not name:
            raise InvalidArgument(
                f"{field} must not be empty; one of: {', '.join(self._policies)}", field=field
            )
        raise NotFound(
            f"unknown namespace {name[:80]!r}; known namespaces: {', '.join(self._policies)} "
            "(add one with CACHE_NAMESPACES or CACHE_NAMESPACES_FILE)",
            reason="UNKNOWN_NAMESPACE",
            metadata={"namespace": name[:80], "known": ",".join(self._policies)},
        )

    def with_overrides(self, overrides: Iterable[NamespacePolicy]) -> Namespaces:
        """A copy with these policies replacing (or adding to) the current ones."""
        merged = dict(self._policies)
        for policy in overrides:
            merged[policy.name] = policy
        return Namespaces(merged.values())


def _check(name: str, default_ttl: float, max_ttl: float) -> None:
    if not NAME.match(name):
        raise ValueError(f"namespace name {name!r} must be lower-case letters, digits and _ (a-z first)")
    if not 0.001 <= default_ttl <= MAX_TTL_SECONDS:
        raise ValueError(f"{name}: default TTL must be from 1ms to 365d")
    if not default_ttl <= max_ttl <= MAX_TTL_SECONDS:
        raise ValueError(f"{name}: max TTL must be at least the default TTL and at most 365d")


def parse_namespace_spec(text: str, base: Mapping[str, NamespacePolicy]) -> list[NamespacePolicy]:
    """Policies from "name=default[/max][!]" items separated by commas ("!" turns freshness on).

    A name already in ``base`` keeps its other settings; a new name gets max = default. ValueError
    says which item is wrong.
    """
    policies = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"{item!r} is not name=ttl")
        fresh = value.strip().endswith("!")
        value = value.strip().removesuffix("!")
        default_text, _, max_text = value.partition("/")
        known = base.get(name)
        try:
            default_ttl = parse_duration(default_text)
            implied_max = max(default_ttl, known.max_ttl) if known else default_ttl
            max_ttl = parse_duration(max_text) if max_text else implied_max
        except ValueError:
            raise ValueError(f"{item!r}: TTLs must be durations such as 30m, 1h or 24h") from None
        _check(name, default_ttl, max_ttl)
        freshness = fresh or (known.freshness_checked if known else False)
        policies.append(NamespacePolicy(name, default_ttl, max_ttl, freshness))
    return policies


def read_namespace_file(path: Path, base: Mapping[str, NamespacePolicy]) -> list[NamespacePolicy]:
    """Policies from a TOML file with one ``[namespaces.<name>]`` table per namespace.

    Keys: ``default_ttl`` and ``max_ttl`` (durations: "30m", "24h"), ``freshness_checked`` (bool).
    A namespace already in ``base`` keeps what the table does not say. ValueError on any mistake.
    """
    try:
        data = tomllib.loads(path.read_text())
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path} is not valid TOML: {error}") from None
    tables = data.get("namespaces")
    if not isinstance(tables, dict) or not tables:
        raise ValueError(f"{path} has no [namespaces.<name>] tables")
    policies = []
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ValueError(f"namespaces.{name} must be a table")
        unknown = set(table) - {"default_ttl", "max_ttl", "freshness_checked"}
        if unknown:
            raise ValueError(f"namespaces.{name}: unknown keys {', '.join(sorted(unknown))}")
        existing = base.get(name)
        known = existing or NamespacePolicy(name, 3600.0, 3600.0)
        try:
            default_ttl = _duration(table.get("default_ttl"), known.default_ttl)
            implied_max = max(existing.max_ttl, default_ttl) if existing else default_ttl
            max_ttl = _duration(table.get("max_ttl"), implied_max)
        except ValueError:
            raise ValueError(f"namespaces.{name}: TTLs must be durations such as 30m, 1h or 24h") from None
        fresh = table.get("freshness_checked", known.freshness_checked)
        if not isinstance(fresh, bool):
            raise ValueError(f"namespaces.{name}.freshness_checked must be true or false")
        _check(name, default_ttl, max_ttl)
        policies.append(replace(known, default_ttl=default_ttl, max_ttl=max_ttl, freshness_checked=fresh))
    return policies


def _duration(value: object, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(value)
