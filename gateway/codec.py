"""HTTP request parts -> protobuf request message, and protobuf response -> JSON, both generic.

The request is assembled as one JSON object (body, then query parameters, then path variables,
each later one overriding), checked field by field against the request's descriptor
(:mod:`gateway.jsoncheck`) so that an unknown field or a wrong type is refused naming the field,
then parsed with protobuf's canonical JSON mapping (``json_format``). Responses use the same
mapping: lowerCamelCase names by default, enums by name, 64-bit integers as strings, every field
present (grpc-gateway's defaults).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from gateway.jsoncheck import (
    FLOATS,
    FREE_FORM,
    SPECIAL_FLOATS,
    WRAPPERS,
    RequestError,
    check_json,
    fields_of,
    type_name,
)

__all__ = [
    "JsonOptions",
    "RequestError",
    "build_request",
    "decode_body",
    "message_class",
    "render",
]

_T = FieldDescriptor


@dataclass(frozen=True)
class JsonOptions:
    """How responses are written."""

    proto_names: bool = False  # snake_case field names instead of lowerCamelCase
    emit_defaults: bool = True  # print fields at their default value (grpc-gateway's default)


@cache
def message_class(descriptor: Descriptor) -> type[Message]:
    """The generated (or dynamically made) class of a message descriptor."""
    return message_factory.GetMessageClass(descriptor)


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
        if message.full_name in WRAPPERS:
            return _text_value(text, message.fields_by_name["value"], where)
        if message.full_name not in _TEXT_MESSAGES:
            raise RequestError(where, f"is a message ({message.name}); set its fields as {where}.<field>=...")
        return text
    if field.type == _T.TYPE_BOOL:
        if text.lower() not in _BOOL_TEXT:
            raise RequestError(where, f"expected true or false, got {text!r}")
        return _BOOL_TEXT[text.lower()]
    if field.type in FLOATS and text not in SPECIAL_FLOATS:
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
        field = fields_of(current).get(part)
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
    fields = fields_of(descriptor)
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
            and field.message_type.full_name not in FREE_FORM
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
                    "body", f"expected a JSON object ({descriptor.name}), got {type_name(value)}"
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
