"""An OpenAPI 3.1 document generated from the same route table and descriptors the transcoder uses.

Each route is an operation: path variables are path parameters (named by their field path),
the remaining fields of a body-less route are query parameters (nested fields dotted, repeated
fields exploded, maps as ``name[key]``), the body is the request message (``*``) or one field.
Schemas follow protobuf's JSON mapping: lowerCamelCase names (or proto names when configured),
64-bit integers as strings, enums by name, well-known types as their JSON forms.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from gateway.protodocs import ProtoDocs
from gateway.routes import Route, RouteTable

__all__ = ["ERROR_SCHEMA", "build_openapi"]

_T = FieldDescriptor
_INT32 = {_T.TYPE_INT32, _T.TYPE_SINT32, _T.TYPE_SFIXED32}
_UINT32 = {_T.TYPE_UINT32, _T.TYPE_FIXED32}
_INT64 = {_T.TYPE_INT64, _T.TYPE_SINT64, _T.TYPE_SFIXED64}
_UINT64 = {_T.TYPE_UINT64, _T.TYPE_FIXED64}
_MAX_QUERY_DEPTH = 3
_STREAM_NOTE = " Server stream: NDJSON lines, SSE with `Accept: text/event-stream`, or WebSocket frames."

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A failed call: the gRPC code number, a message for people, and google.rpc details.",
    "properties": {
        "code": {"type": "integer", "description": "gRPC status code (3 = INVALID_ARGUMENT, ...)"},
        "message": {"type": "string"},
        "details": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"@type": {"type": "string"}},
                "additionalProperties": True,
            },
        },
    },
    "required": ["code", "message", "details"],
}

_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {
        "type": "string",
        "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$",
        "description": 'seconds with an "s" suffix ("1.5s")',
    },
    "google.protobuf.FieldMask": {"type": "string", "description": "field paths separated by commas"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
        "additionalProperties": True,
    },
}
_WRAPPER_PREFIX = "google.protobuf."
_WRAPPERS = {
    "DoubleValue",
    "FloatValue",
    "Int64Value",
    "UInt64Value",
    "Int32Value",
    "UInt32Value",
    "BoolValue",
    "StringValue",
    "BytesValue",
}


class _Schemas:
    """Component schemas, one per message, added as they are referenced."""

    def __init__(self, proto_names: bool, docs: ProtoDocs) -> None:
        self.proto_names = proto_names
        self.docs = docs
        self.components: dict[str, Any] = {}

    def described(self, schema: dict[str, Any], key: str) -> dict[str, Any]:
        """The schema with the proto comment of ``key`` as its description (when there is one)."""
        text = self.docs.get(key)
        return {**schema, "description": text} if text else schema

    def name(self, field: FieldDescriptor) -> str:
        return field.name if self.proto_names else field.json_name

    def message(self, descriptor: Descriptor) -> dict[str, Any]:
        """A schema for a message: inline for well-known types, else a $ref to its component."""
        full = descriptor.full_name
        if full in _WELL_KNOWN:
            return dict(_WELL_KNOWN[full])
        if full.startswith(_WRAPPER_PREFIX) and descriptor.name in _WRAPPERS:
            return self.scalar(descriptor.fields_by_name["value"])
        if full not in self.components:
            self.components[full] = {}  # placeholder: recursion ends here
            self.components[full] = self.object(descriptor, descriptor.fields)
        return {"$ref": f"#/components/schemas/{full}"}

    def object(self, descriptor: Descriptor, fields: Iterable[FieldDescriptor]) -> dict[str, Any]:
        schema = {
            "type": "object",
            "title": descriptor.name,
            "properties": {
                self.name(f): self.described(self.field(f), f"{descriptor.full_name}.{f.name}")
                for f in fields
            },
            "additionalProperties": False,
        }
        return self.described(schema, descriptor.full_name)

    def field(self, field: FieldDescriptor) -> dict[str, Any]:
        message = field.message_type
        if message is not None and message.GetOptions().map_entry:
            return {"type": "object", "additionalProperties": self.field(message.fields_by_name["value"])}
        single = self.message(message) if message is not None else self.scalar(field)
        if field.is_repeated:
            return {"type": "array", "items": single}
        return single

    def scalar(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.type == _T.TYPE_ENUM and field.enum_type is not None:
            return {"type": "string", "enum": [v.name for v in field.enum_type.values]}
        return dict(_SCALARS.get(field.type, {}))


_SCALARS: dict[int, dict[str, Any]] = {
    _T.TYPE_STRING: {"type": "string"},
    _T.TYPE_BYTES: {"type": "string", "format": "byte", "contentEncoding": "base64"},
    _T.TYPE_BOOL: {"type": "boolean"},
    _T.TYPE_FLOAT: {"type": "number", "format": "float"},
    _T.TYPE_DOUBLE: {"type": "number", "format": "double"},
    **{t: {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1} for t in _INT32},
    **{t: {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**32 - 1} for t in _UINT32},
    **{t: {"type": "string", "format": "int64", "pattern": "^-?[0-9]{1,19}$"} for t in _INT64},
    **{t: {"type": "string", "format": "uint64", "pattern": "^[0-9]{1,20}$"} for t in _UINT64},
}


def _query_parameters(
    schemas: _Schemas, descriptor: Descriptor, prefix: str, excluded: frozenset[str], depth: int
) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for field in descriptor.fields:
        proto_path = f"{prefix}{field.name}"
        if proto_path in excluded:
            continue
        name = proto_path  # rewritten to JSON names by _query_names
        message = field.message_type
        if message is not None and message.GetOptions().map_entry:
            params.append(
                {
                    "name": name,
                    "in": "query",
                    "style": "deepObject",
                    "explode": True,
                    "schema": {
                        "type": "object",
                        "additionalProperties": schemas.scalar(message.fields_by_name["value"]),
                    },
                }
            )
            continue
        is_plain_message = (
            message is not None
            and message.full_name not in _WELL_KNOWN
            and not (message.full_name.startswith(_WRAPPER_PREFIX) and message.name in _WRAPPERS)
        )
        if is_plain_message:
            if field.is_repeated or depth >= _MAX_QUERY_DEPTH or message is None:
                continue  # not expressible as query parameters
            nested = _query_parameters(schemas, message, f"{proto_path}.", excluded, depth + 1)
            params.extend(nested)
            continue
        schema = schemas.field(field)
        if message is not None and message.full_name in ("google.protobuf.Value", "google.protobuf.Struct"):
            continue
        param: dict[str, Any] = {"name": name, "in": "query", "schema": schema}
        doc = schemas.docs.get(f"{descriptor.full_name}.{field.name}")
        if doc:
            param["description"] = doc
        if field.is_repeated:
            param["style"] = "form"
            param["explode"] = True
        params.append(param)
    return params


def _query_names(schemas: _Schemas, params: list[dict[str, Any]], descriptor: Descriptor) -> None:
    """Rewrite dotted proto paths of nested parameters to JSON names (a.b_c -> a.bC)."""
    for param in params:
        parts = param["name"].split(".")
        current: Descriptor | None = descriptor
        names: list[str] = []
        for part in parts:
            field = None
            if current is not None:
                field = current.fields_by_name.get(part) or next(
                    (f for f in current.fields if f.json_name == part), None
                )
            if field is None:
                names.append(part)
                current = None
                continue
            names.append(schemas.name(field))
            current = field.message_type
        param["name"] = ".".join(names)


def _operation(route: Route, schemas: _Schemas, operation_id: str, auth: bool) -> dict[str, Any]:
    request = route.method.input_type
    parameters: list[dict[str, Any]] = []
    for variable in route.template.variables:
        field = _field_at(request, variable.field_path)
        schema = dict(schemas.scalar(field))
        if schema.get("type") == "string" and "enum" not in schema:
            schema["minLength"] = 1
        description = "may contain '/'" if variable.multi_segment else "one path segment ('/' as %2F)"
        owner = field.containing_type
        doc = schemas.docs.get(f"{owner.full_name}.{field.name}") if owner is not None else None
        if doc:
            description = f"{doc} ({description})"
        parameters.append(
            {
                "name": variable.name,
                "in": "path",
                "required": True,
                "description": description,
                "schema": schema,
            }
        )
    rpc_doc = schemas.docs.get(route.method.full_name, "")
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": f"{route.method.containing_service.name}.{route.method.name}",
        "description": (
            (f"{rpc_doc}\n\n" if rpc_doc else "")
            + f"gRPC {route.method.full_name}. Needs the `{route.scope}` scope."
            + (_STREAM_NOTE if route.server_streaming else "")
        ),
        "tags": [route.method.containing_service.full_name],
        "x-mediasuite-scope": str(route.scope),
    }
    bound = frozenset(v.name for v in route.template.variables)
    if route.body != "*":
        excluded = bound | ({route.body} if route.body else frozenset())
        query = _query_parameters(schemas, request, "", excluded, 0)
        _query_names(schemas, query, request)
        parameters.extend(query)
    if parameters:
        operation["parameters"] = parameters
    if route.body == "*":
        body_fields = [
            f for f in request.fields if f.name not in bound and not _is_prefix_of_bound(f.name, bound)
        ]
        body_schema = schemas.object(request, body_fields)
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body_schema}},
        }
    elif route.body:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.field(request.fields_by_name[route.body])}},
        }
    response = route.method.output_type
    if route.server_streaming:
        envelope = {
            "type": "object",
            "properties": {
                "result": schemas.message(response),
                "error": {"$ref": "#/components/schemas/Error"},
            },
        }
        ok = {
            "description": "A stream of messages: one JSON object a line, or SSE events when asked",
            "content": {
                "application/x-ndjson": {"schema": envelope},
                "text/event-stream": {"schema": {"type": "string"}},
            },
        }
    else:
        schema = (
            schemas.field(response.fields_by_name[route.response_body])
            if route.response_body
            else schemas.message(response)
        )
        ok = {"description": "OK", "content": {"application/json": {"schema": schema}}}
    operation["responses"] = {
        "200": ok,
        "default": {
            "description": "An error: the gRPC status mapped to HTTP as grpc-gateway does",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        },
    }
    if auth:
        operation["security"] = [{"bearer": []}, {"apiKey": []}]
    return operation


def _is_prefix_of_bound(name: str, bound: frozenset[str]) -> bool:
    return any(b.startswith(name + ".") for b in bound)


def _field_at(descriptor: Descriptor, path: Iterable[str]) -> FieldDescriptor:
    current = descriptor
    field: FieldDescriptor | None = None
    for name in path:
        field = current.fields_by_name[name]
        if field.message_type is not None:
            current = field.message_type
    assert field is not None  # noqa: S101 (narrows a type: an invariant of the code above, not a check of input)
    return field


def build_openapi(
    table: RouteTable,
    *,
    auth: bool,
    proto_names: bool = False,
    docs: ProtoDocs | None = None,
    title: str = "mediasuite API",
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route in the table (with the proto comments in ``docs``)."""
    schemas = _Schemas(proto_names, docs or {})
    paths: dict[str, dict[str, Any]] = {}
    used_ids: dict[str, int] = {}
    for route in sorted(table.routes, key=lambda r: (r.template.openapi_path(), r.http_method)):
        base = route.operation_id
        count = used_ids.get(base, 0)
        used_ids[base] = count + 1
        operation_id = base if count == 0 else f"{base}{count + 1}"
        paths.setdefault(route.template.openapi_path(), {})[route.http_method.lower()] = _operation(
            route, schemas, operation_id, auth
        )
    components: dict[str, Any] = {
        "schemas": {"Error": ERROR_SCHEMA, **dict(sorted(schemas.components.items()))},
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "an API key as a bearer token"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": "v1",
            "description": (
                "HTTP/JSON transcoded from the mediasuite gRPC services (google.api.http annotations). "
                "Errors are {code, message, details} with the gRPC status mapped as grpc-gateway does. "
                "Send Grpc-Timeout (e.g. 5S) to set a deadline; X-Request-Id is echoed."
            ),
        },
        "tags": [
            {"name": name, **({"description": schemas.docs[name]} if name in schemas.docs else {})}
            for name in sorted({r.method.containing_service.full_name for r in table.routes})
        ],
        "paths": paths,
        "components": components,
    }
