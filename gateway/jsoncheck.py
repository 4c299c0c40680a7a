"""Checks a JSON value against a protobuf message descriptor before json_format parses it, so
that an unknown field or a wrong type is refused naming the field as the caller wrote it
("filter.statuses[1]"), which json_format's own errors do not do reliably.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from functools import cache
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

__all__ = [
    "FLOATS",
    "FREE_FORM",
    "SPECIAL_FLOATS",
    "WRAPPERS",
    "RequestError",
    "check_json",
    "fields_of",
    "type_name",
]

_T = FieldDescriptor
_INT_RANGES = {
    _T.TYPE_INT32: (-(2**31), 2**31 - 1),
    _T.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _T.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _T.TYPE_UINT32: (0, 2**32 - 1),
    _T.TYPE_FIXED32: (0, 2**32 - 1),
    _T.TYPE_INT64: (-(2**63), 2**63 - 1),
    _T.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _T.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _T.TYPE_UINT64: (0, 2**64 - 1),
    _T.TYPE_FIXED64: (0, 2**64 - 1),
}
_INTEGER_TEXT = re.compile(r"^-?[0-9]+$")
FLOATS = {_T.TYPE_FLOAT, _T.TYPE_DOUBLE}
_FLOAT32_MAX = 3.4028234663852886e38
SPECIAL_FLOATS = {"NaN", "Infinity", "-Infinity"}
WRAPPERS = {
    f"google.protobuf.{name}"
    for name in (
        "DoubleValue",
        "FloatValue",
        "Int64Value",
        "UInt64Value",
        "Int32Value",
        "UInt32Value",
        "BoolValue",
        "StringValue",
        "BytesValue",
    )
}
FREE_FORM = {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}


class RequestError(Exception):
    """A request refused before any call: the field at fault (as the caller wrote it) and why."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}" if field else description)
        self.field = field
        self.description = description


@cache
def fields_of(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    """Fields by JSON name and by proto name (json_format accepts both)."""
    found: dict[str, FieldDescriptor] = {}
    for field in descriptor.fields:
        found[field.name] = field
        found[field.json_name] = field
    return found


def _join(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def type_name(value: Any) -> str:
    """What a JSON value is, for error messages ("a string", "an array")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def check_json(value: Any, descriptor: Descriptor, path: str = "") -> None:
    """Check a JSON object against a message descriptor; RequestError names the first field at fault."""
    if descriptor.full_name in WRAPPERS:
        _check_scalar(value, descriptor.fields_by_name["value"], path)
        return
    if descriptor.full_name in FREE_FORM:
        return  # any JSON value fits (json_format still checks nesting)
    special = _SPECIAL_MESSAGES.get(descriptor.full_name)
    if special is not None:
        special(value, path)
        return
    if not isinstance(value, dict):
        raise RequestError(path, f"expected an object ({descriptor.name}), got {type_name(value)}")
    if descriptor.full_name == "google.protobuf.Any":
        if not isinstance(value.get("@type"), str):
            raise RequestError(path, 'an Any needs an "@type" string')
        return  # json_format resolves the type and checks the rest
    fields = fields_of(descriptor)
    oneofs: dict[str, str] = {}
    for key, item in value.items():
        field = fields.get(key)
        where = _join(path, key)
        if field is None:
            known = ", ".join(f.json_name for f in descriptor.fields) or "none"
            raise RequestError(where, f"unknown field; {descriptor.name} has: {known}")
        if item is None:
            continue
        oneof = field.containing_oneof
        if oneof is not None and item is not None:
            if oneof.name in oneofs:
                raise RequestError(
                    where, f"{oneofs[oneof.name]} is already set; only one field of {oneof.name} may be set"
                )
            oneofs[oneof.name] = key
        _check_field(item, field, where)


def _check_field(value: Any, field: FieldDescriptor, path: str) -> None:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        if not isinstance(value, dict):
            raise RequestError(path, f"expected an object (a map), got {type_name(value)}")
        key_field = field.message_type.fields_by_name["key"]
        value_field = field.message_type.fields_by_name["value"]
        for key, item in value.items():
            where = f"{path}[{key}]"
            _check_map_key(key, key_field, where)
            if item is None:
                raise RequestError(where, "map values cannot be null")
            _check_single(item, value_field, where)
        return
    if field.is_repeated:
        if not isinstance(value, list):
            raise RequestError(path, f"expected an array, got {type_name(value)}")
        for index, item in enumerate(value):
            if item is None:
                raise RequestError(f"{path}[{index}]", "array items cannot be null")
            _check_single(item, field, f"{path}[{index}]")
        return
    _check_single(value, field, path)


def _check_single(value: Any, field: FieldDescriptor, path: str) -> None:
    if field.message_type is not None:
        if value is None and field.message_type.full_name == "google.protobuf.Value":
            return
        check_json(value, field.message_type, path)
    else:
        _check_scalar(value, field, path)


def _check_map_key(key: str, field: FieldDescriptor, path: str) -> None:
    if field.type == _T.TYPE_BOOL:
        if key not in ("true", "false"):
            raise RequestError(path, "map key must be true or false")
    elif field.type in _INT_RANGES:
        _check_integer(key, field, path)


def _check_scalar(value: Any, field: FieldDescriptor, path: str) -> None:
    kind = field.type
    if kind == _T.TYPE_STRING:
        if not isinstance(value, str):
            raise RequestError(path, f"expected a string, got {type_name(value)}")
    elif kind == _T.TYPE_BYTES:
        if not isinstance(value, str):
            raise RequestError(path, f"expected base64 text, got {type_name(value)}")
        _decode_base64(value, path)
    elif kind == _T.TYPE_BOOL:
        if not isinstance(value, bool):
            raise RequestError(path, f"expected true or false, got {type_name(value)}")
    elif kind in _INT_RANGES:
        _check_integer(value, field, path)
    elif kind in FLOATS:
        _check_float(value, field, path)
    elif kind == _T.TYPE_ENUM and field.enum_type is not None:
        _check_enum(value, field.enum_type, path)


def _check_integer(value: Any, field: FieldDescriptor, path: str) -> None:
    low, high = _INT_RANGES[field.type]
    number: int
    if isinstance(value, bool):
        raise RequestError(path, "expected an integer, got a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not value.is_integer():
            raise RequestError(path, f"expected an integer, got {value!r}")
        number = int(value)
    elif isinstance(value, str):
        if _INTEGER_TEXT.match(value) is None:
            raise RequestError(path, f"expected an integer, got {value!r}")
        number = int(value)
    else:
        raise RequestError(path, f"expected an integer, got {type_name(value)}")
    if not low <= number <= high:
        raise RequestError(path, f"{number} is out of range for {_TYPE_NAMES[field.type]} ({low} to {high})")


def _check_float(value: Any, field: FieldDescriptor, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RequestError(path, f"expected a number, got {type_name(value)}")
    if isinstance(value, str):
        if value in SPECIAL_FLOATS:
            return
        try:
            number = float(value)
        except ValueError:
            raise RequestError(path, f"expected a number, got {value!r}") from None
        if math.isnan(number) or math.isinf(number):
            raise RequestError(path, 'write "NaN", "Infinity" or "-Infinity" for special values')
    else:
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            raise RequestError(
                path, 'is out of range; write "NaN", "Infinity" or "-Infinity" for special values'
            )
    if field.type == _T.TYPE_FLOAT and abs(number) > _FLOAT32_MAX:
        raise RequestError(path, f"{number:g} is out of range for a float")


def _check_enum(value: Any, enum: EnumDescriptor, path: str) -> None:
    if isinstance(value, str):
        if value not in enum.values_by_name:
            names = ", ".join(v.name for v in enum.values)
            raise RequestError(path, f"unknown {enum.name} {value!r}; expected one of {names}")
    elif isinstance(value, int) and not isinstance(value, bool):
        if not -(2**31) <= value < 2**31:
            raise RequestError(path, f"{value} is out of range for an enum")
    else:
        raise RequestError(path, f"expected a {enum.name} name, got {type_name(value)}")


def _decode_base64(text: str, path: str) -> bytes:
    cleaned = text.replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(path, "expected base64 (standard or URL-safe alphabet)") from None


def _check_timestamp(value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise RequestError(
            path, f'expected an RFC 3339 time ("2024-05-01T12:00:00Z"), got {type_name(value)}'
        )
    try:
        Timestamp().FromJsonString(value)
    except ValueError:
        raise RequestError(
            path, f'expected an RFC 3339 time such as "2024-05-01T12:00:00Z", got {value!r}'
        ) from None


def _check_duration(value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise RequestError(path, f'expected a duration such as "1.5s", got {type_name(value)}')
    try:
        Duration().FromJsonString(value)
    except ValueError:
        raise RequestError(path, f'expected a duration in seconds such as "1.5s", got {value!r}') from None


def _check_field_mask(value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise RequestError(
            path, f'expected field paths separated by commas ("a,b.c"), got {type_name(value)}'
        )


def _check_empty(value: Any, path: str) -> None:
    if not isinstance(value, dict) or value:
        raise RequestError(path, "expected an empty object {}")


_SPECIAL_MESSAGES = {
    "google.protobuf.Timestamp": _check_timestamp,
    "google.protobuf.Duration": _check_duration,
    "google.protobuf.FieldMask": _check_field_mask,
    "google.protobuf.Empty": _check_empty,
}

_TYPE_NAMES = {
    _T.TYPE_INT32: "int32",
    _T.TYPE_SINT32: "sint32",
    _T.TYPE_SFIXED32: "sfixed32",
    _T.TYPE_UINT32: "uint32",
    _T.TYPE_FIXED32: "fixed32",
    _T.TYPE_INT64: "int64",
    _T.TYPE_SINT64: "sint64",
    _T.TYPE_SFIXED64: "sfixed64",
    _T.TYPE_UINT64: "uint64",
    _T.TYPE_FIXED64: "fixed64",
}
