"""Cache values: results as JSON (dataclasses, with their types restored on the way back) and outputs as
a small JSON header followed by the bytes. Never pickle: the cache is shared, its values untrusted."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import types
import typing
from typing import Any, TypeVar

__all__ = ["from_json", "pack_output", "to_json", "unpack_output"]

T = TypeVar("T")
_MAGIC = b"MSP1"


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, bytes):
        raise TypeError("bytes belong in pack_output, not in JSON")
    return value


def to_json(value: Any) -> bytes:
    """A dataclass (nested dataclasses, lists, dicts, datetimes) as compact JSON."""
    return json.dumps(_plain(value), separators=(",", ":")).encode()


@functools.cache
def _fields(kind: type) -> tuple[tuple[str, Any], ...]:
    """A dataclass's field names and resolved types (resolving them is slow: done once per class)."""
    hints = typing.get_type_hints(kind)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(kind))


def _build(kind: Any, value: Any) -> Any:  # noqa: PLR0911  # one return per kind of type
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in typing.get_args(kind) if a is not type(None)]
        return _build(inner[0], value)
    if origin is list:
        (item,) = typing.get_args(kind)
        return [_build(item, v) for v in value]
    if origin is tuple:
        args = typing.get_args(kind)
        return tuple(_build(a, v) for a, v in zip(args, value, strict=False))
    if origin is dict:
        _, item = typing.get_args(kind)
        return {k: _build(item, v) for k, v in value.items()}
    if kind is dt.datetime:
        return dt.datetime.fromisoformat(value)
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        return kind(**{name: _build(hint, value[name]) for name, hint in _fields(kind) if name in value})
    if kind is float and isinstance(value, int):
        return float(value)
    return value


def from_json(kind: type[T], data: bytes) -> T:
    """The dataclass ``kind`` back from :func:`to_json`; ValueError when the value does not fit."""
    try:
        result: T = _build(kind, json.loads(data))
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as error:
        raise ValueError(f"cached value does not decode as {kind.__name__}: {error}") from None
    return result


def pack_output(meta: dict[str, Any], data: bytes) -> bytes:
    """An output's metadata (JSON) and bytes in one cache value."""
    header = json.dumps(meta, separators=(",", ":")).encode()
    return _MAGIC + len(header).to_bytes(4, "big") + header + data


def unpack_output(value: bytes) -> tuple[dict[str, Any], bytes]:
    """Inverse of :func:`pack_output`; ValueError when the value is not one."""
    if value[:4] != _MAGIC or len(value) < 8:
        raise ValueError("cached value is not a packed output")
    size = int.from_bytes(value[4:8], "big")
    try:
        meta = json.loads(value[8 : 8 + size])
    except json.JSONDecodeError as error:
        raise ValueError(f"cached output header is not JSON: {error}") from None
    if not isinstance(meta, dict):
        raise ValueError("cached output header is not an object")
    return meta, value[8 + size :]
