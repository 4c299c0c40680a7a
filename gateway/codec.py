"""HTTP request parts -> protobuf request message, and protobuf response -> JSON, both generic.

The request is assembled as one JSON object (body, then query parameters, then path variables,
each later one overriding), checked field by field against the request's descriptor so that an
unknown field or a wrong type is refused naming the field, then parsed with protobuf's canonical
JSON mapping (``json_format``). Responses use the same mapping: lowerCamelCase names by default,
enums by name, 64-bit integers as strings, every field present (grpc-gateway's defaults).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

__all__ = [
    "JsonOptions",
    "RequestError",
    "build_request",
    "check_json",
    "message_class",
    "render",
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
_FLOATS = {_T.TYPE_FLOAT, _T.TYPE_DOUBLE}
_FLOAT32_MAX = 3.4028234663852886e38
_SPECIAL_FLOATS = {"NaN", "Infinity", "-Infinity"}
_WRAPPERS = {
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
_FREE_FORM = {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}


class RequestError(Exception):
    """A request refused before any call: the field at fault (as the caller wrote it) and why."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}" if field else description)
        self.field = field
        self.description = description


@dataclass(frozen=True)
class JsonOptions:
    """How responses are written."""

    proto_names: bool = False  # snake_case field names instead of lowerCamelCase
    emit_defaults: bool = True  # print fields at their default value (grpc-gateway's default)


@cache
def message_class(descriptor: Descriptor) -> type[Message]:
    """The generated (or dynamically made) class of a message descriptor."""
    return message_factory.GetMessageClass(descriptor)


@cache
def _fields(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    """Fields by JSON name and by proto name (json_format accepts both)."""
    found: dict[str, FieldDescriptor] = {}
    for field in descriptor.fields:
        found[field.name] = field
        found[field.json_name] = field
    return found


def _join(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _type_name(value: Any) -> str:
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
    if descriptor.full_name in _WRAPPERS:
        _check_scalar(value, descriptor.fields_by_name["value"], path)
        return
    if descriptor.full_name in _FREE_FORM:
        return  # any JSON value fits (json_format still checks nesting)
    special = _SPECIAL_MESSAGES.get(descriptor.full_name)
    if special is not None:
        special(value, path)
        return
    if not isinstance(value, dict):
        raise RequestError(path, f"expected an object ({descriptor.name}), got {_type_name(value)}")
    if descriptor.full_name == "google.protobuf.Any":
        if not isinstance(value.get("@type"), str):
            raise RequestError(path, 'an Any needs an "@type" string')
        return  # json_format resolves the type and checks the rest
    fields = _fields(descriptor)
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
            raise RequestError(path, f"expected an object (a map), got {_type_name(value)}")
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
            raise RequestError(path, f"expected an array, got {_type_name(value)}")
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
            raise RequestError(path, f"expected a string, got {_type_name(value)}")
    elif kind == _T.TYPE_BYTES:
        if not isinstance(value, str):
            raise RequestError(path, f"expected base64 text, got {_type_name(value)}")
        _decode_base64(value, path)
    elif kind == _T.TYPE_BOOL:
        if not isinstance(value, bool):
            raise RequestError(path, f"expected true or false, got {_type_name(value)}")
    elif kind in _INT_RANGES:
        _check_integer(value, field, path)
    elif kind in _FLOATS:
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
        raise RequestError(path, f"expected an integer, got {_type_name(value)}")
    if not low <= number <= high:
        raise RequestError(path, f"{number} is out of range for {_TYPE_NAMES[field.type]} ({low} to {high})")


def _check_float(value: Any, field: FieldDescriptor, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RequestError(path, f"expected a number, got {_type_name(value)}")
    if isinstance(value, str):
        if value in _SPECIAL_FLOATS:
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
        raise RequestError(path, f"expected a {enum.name} name, got {_type_name(value)}")


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
            path, f'expected an RFC 3339 time ("2024-05-01T12:00:00Z"), got {_type_name(value)}'
        )
    try:
        Timestamp().FromJsonString(value)
    except ValueError:
        raise RequestError(
            path, f'expected an RFC 3339 time such as "2024-05-01T12:00:00Z", got {value!r}'
        ) from None


def _check_duration(value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise RequestError(path, f'expected a duration such as "1.5s", got {_type_name(value)}')
    try:
        Duration().FromJsonString(value)
    except ValueError:
        raise RequestError(path, f'expected a duration in seconds such as "1.5s", got {value!r}') from None


def _check_field_mask(value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise RequestError(
            path, f'expected field paths separated by commas ("a,b.c"), got {_type_name(value)}'
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


# ---- query parameters and path variables: text -> JSON value of the field's type


_TEXT_MESSAGES = {
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
    "google.protobuf.Value",
}
_BOOL_TEXT = {"true": True, "1": True, "false": False, "0": False}


def _text_value(text: str, field: FieldDescriptor, where: str) -> Any:
    """The JSON value a query or path text stands for, given the field's type."""
    message = field.message_type
    if message is not None:
        if message.full_name in _WRAPPERS:
            return _text_value(text, message.fields_by_name["value"], where)
        if message.full_name not in _TEXT_MESSAGES:
            raise RequestError(where, f"is a message ({message.name}); set its fields as {where}.<field>=...")
        return text
    if field.type == _T.TYPE_BOOL:
        if text.lower() not in _BOOL_TEXT:
            raise RequestError(where, f"expected true or false, got {text!r}")
        return _BOOL_TEXT[text.lower()]
    if field.type in _FLOATS and text not in _SPECIAL_FLOATS:
        try:
            return float(text)
        except ValueError:
            raise RequestError(where, f"expected a number, got {text!r}") from None
    if field.type == _T.TYPE_ENUM and text.lstrip("-").isdigit():
        return int(text)
    return text  # strings, bytes (base64), enum names and integers (checked later, like JSON strings)


def _resolve(descriptor: Descriptor, dotted: str) -> list[FieldDescriptor]:
    """The fields along a dotted path, each found by JSON or proto name; RequestError when unknown."""
    chain: list[FieldDescriptor] = []
    current: Descriptor | None = descriptor
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        where = ".".join(parts[: i + 1])
        if current is None:
            raise RequestError(where, "is not a message field; it has no subfields")
        field = _fields(current).get(part)
        if field is None:
            raise RequestError(where, f"unknown field of {current.name}")
        chain.append(field)
        last = i == len(parts) - 1
        if not last and (field.is_repeated or field.message_type is None):
            current = None
        else:
            current = field.message_type
    return chain


def _set(target: dict[str, Any], chain: Sequence[FieldDescriptor], value: Any) -> None:
    for field in chain[:-1]:
        child = target.get(field.json_name)
        if not isinstance(child, dict):
            child = {}
            target[field.json_name] = child
        target = child
    target[chain[-1].json_name] = value


def _query_object(
    descriptor: Descriptor, query: Iterable[tuple[str, str]], bound: frozenset[str]
) -> dict[str, Any]:
    """Query parameters as a JSON object: ``a.b=1``, ``tags=x&tags=y``, ``labels[env]=prod``."""
    result: dict[str, Any] = {}
    repeated_seen: dict[str, list[Any]] = {}
    maps: dict[str, dict[str, Any]] = {}
    for raw_key, text in query:
        key, _, map_key = raw_key.partition("[")
        if map_key:
            if not map_key.endswith("]"):
                raise RequestError(raw_key, "map parameters are written name[key]=value")
            map_key = map_key[:-1]
        chain = _resolve(descriptor, key)
        canonical = ".".join(f.name for f in chain)
        if any(
            canonical == b or canonical.startswith(b + ".") or b.startswith(canonical + ".") for b in bound
        ):
            raise RequestError(
                raw_key, "is set by the path or the body of this route, not by a query parameter"
            )
        field = chain[-1]
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            if not map_key:
                raise RequestError(raw_key, f"is a map; write {key}[<key>]=<value>")
            value_field = entry.fields_by_name["value"]
            entries = maps.setdefault(canonical, {})
            entries[map_key] = _text_value(text, value_field, raw_key)
            _set(result, chain, entries)
        elif map_key:
            raise RequestError(raw_key, "is not a map field")
        elif field.is_repeated:
            items = repeated_seen.setdefault(canonical, [])
            items.append(_text_value(text, field, raw_key))
            _set(result, chain, items)
        else:
            if canonical in repeated_seen:
                raise RequestError(raw_key, "is given more than once but holds one value")
            repeated_seen[canonical] = []
            _set(result, chain, _text_value(text, field, raw_key))
    return result


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _normalise(obj: dict[str, Any], descriptor: Descriptor) -> dict[str, Any]:
    """Rename proto-named keys to their JSON names (one spelling per field before merging)."""
    fields = _fields(descriptor)
    out: dict[str, Any] = {}
    for key, raw in obj.items():
        field = fields.get(key)
        if field is None:
            out[key] = raw  # check_json reports it
            continue
        value = raw
        if (
            isinstance(raw, dict)
            and field.message_type is not None
            and not field.message_type.GetOptions().map_entry
            and field.message_type.full_name not in _FREE_FORM
        ):
            value = _normalise(raw, field.message_type)
        if field.json_name in out:
            raise RequestError(key, f"is given twice (as {field.name} and {field.json_name})")
        out[field.json_name] = value
    return out


def decode_body(raw: bytes) -> Any:
    """The JSON value of a request body; RequestError when it is not JSON."""
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise RequestError("body", "is not UTF-8 text") from None
    except RecursionError:
        raise RequestError("body", "is nested too deeply") from None
    except json.JSONDecodeError as error:
        raise RequestError(
            "body", f"is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None


def build_request(
    descriptor: Descriptor,
    *,
    body_field: str,
    path_params: Mapping[str, str],
    query: Sequence[tuple[str, str]],
    body: bytes,
) -> Message:
    """The request message of a route from its path variables, query parameters and body."""
    request: dict[str, Any] = {}
    bound = frozenset(path_params)
    if body_field:
        if not body.strip():
            raise RequestError("body", "this route needs a JSON body")
        value = decode_body(body)
        if body_field == "*":
            if not isinstance(value, dict):
                raise RequestError(
                    "body", f"expected a JSON object ({descriptor.name}), got {_type_name(value)}"
                )
            request = _normalise(value, descriptor)
        else:
            field = descriptor.fields_by_name[body_field]
            request = {field.json_name: value}
            bound = bound | {body_field}
    elif body.strip():
        raise RequestError("body", "this route takes no body; pass fields as query parameters")
    if query:
        if body_field == "*":
            names = ", ".join(sorted({k for k, _ in query}))
            raise RequestError(names, "query parameters are not accepted here: every field goes in the body")
        _merge(request, _query_object(descriptor, query, bound))
    for dotted, text in path_params.items():
        chain = _resolve(descriptor, dotted)
        _set(request, chain, _text_value(text, chain[-1], dotted))  # the path overrides the body
    message = message_class(descriptor)()
    try:
        check_json(request, descriptor)
        json_format.ParseDict(request, message)
    except json_format.ParseError as error:
        raise RequestError("body", str(error).split("\n", 1)[0]) from None
    except RecursionError:
        raise RequestError("body", "is nested too deeply") from None
    return message


def render(message: Message, options: JsonOptions, response_body: str = "") -> Any:
    """The JSON value of a response (or of its ``response_body`` field)."""
    as_dict = json_format.MessageToDict(
        message,
        always_print_fields_with_no_presence=options.emit_defaults,
        preserving_proto_field_name=options.proto_names,
    )
    if response_body:
        field = message.DESCRIPTOR.fields_by_name[response_body]
        return as_dict.get(field.name if options.proto_names else field.json_name)
    return as_dict
