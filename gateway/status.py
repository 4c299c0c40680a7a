"""gRPC status -> HTTP status and error body, exactly as grpc-gateway maps them.

The body is ``{"code": <gRPC code number>, "message": "...", "details": [...]}``; details are the
google.rpc.Status details (BadRequest, ErrorInfo, ...) in protobuf JSON with their ``@type``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any

import grpc
from google.protobuf import any_pb2, json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

__all__ = [
    "HTTP_STATUS",
    "bad_request",
    "error_body",
    "error_info",
    "from_rpc_error",
    "http_status",
]

# grpc-gateway runtime.HTTPStatusFromCode
HTTP_STATUS: Mapping[int, int] = {
    code_pb2.OK: 200,
    code_pb2.CANCELLED: 499,
    code_pb2.UNKNOWN: 500,
    code_pb2.INVALID_ARGUMENT: 400,
    code_pb2.DEADLINE_EXCEEDED: 504,
    code_pb2.NOT_FOUND: 404,
    code_pb2.ALREADY_EXISTS: 409,
    code_pb2.PERMISSION_DENIED: 403,
    code_pb2.UNAUTHENTICATED: 401,
    code_pb2.RESOURCE_EXHAUSTED: 429,
    code_pb2.FAILED_PRECONDITION: 400,
    code_pb2.ABORTED: 409,
    code_pb2.OUT_OF_RANGE: 400,
    code_pb2.UNIMPLEMENTED: 501,
    code_pb2.INTERNAL: 500,
    code_pb2.UNAVAILABLE: 503,
    code_pb2.DATA_LOSS: 500,
}

_DETAILS_KEY = "grpc-status-details-bin"
_DOMAIN = "mediasuite"


def http_status(code: int) -> int:
    """The HTTP status of a gRPC code number (500 for a code grpc-gateway does not know)."""
    return HTTP_STATUS.get(code, 500)


def _detail_json(detail: any_pb2.Any) -> dict[str, Any]:
    try:
        rendered: dict[str, Any] = json_format.MessageToDict(detail)
    except (TypeError, KeyError, json_format.Error):  # a type this process has not registered
        return {"@type": detail.type_url, "value": base64.b64encode(detail.value).decode()}
    return rendered


def error_body(code: int, message: str, details: Iterable[Message | any_pb2.Any] = ()) -> dict[str, Any]:
    """The error object: code, message and details (each packed in an Any, rendered with @type)."""
    rendered = []
    for detail in details:
        if isinstance(detail, any_pb2.Any):
            packed = detail
        else:
            packed = any_pb2.Any()
            packed.Pack(detail)
        rendered.append(_detail_json(packed))
    return {"code": code, "message": message, "details": rendered}


def bad_request(field: str, description: str, message: str | None = None) -> tuple[int, dict[str, Any]]:
    """400 INVALID_ARGUMENT naming the field (google.rpc.BadRequest)."""
    violation = error_details_pb2.BadRequest(
        field_violations=[error_details_pb2.BadRequest.FieldViolation(field=field, description=description)]
    )
    text = message or (f"{field}: {description}" if field else description)
    return 400, error_body(code_pb2.INVALID_ARGUMENT, text, [violation])


def error_info(
    code: int, message: str, reason: str, metadata: Mapping[str, str]
) -> tuple[int, dict[str, Any]]:
    """An error with a google.rpc.ErrorInfo (domain mediasuite)."""
    info = error_details_pb2.ErrorInfo(reason=reason, domain=_DOMAIN, metadata=dict(metadata))
    return http_status(code), error_body(code, message, [info])


def from_rpc_error(error: grpc.aio.AioRpcError) -> tuple[int, dict[str, Any]]:
    """HTTP status and body of a failed call, with the rich details the service attached."""
    code = error.code() or grpc.StatusCode.UNKNOWN
    number: int = code.value[0]
    message = error.details() or code.name
    details: list[any_pb2.Any] = []
    trailing: Any = error.trailing_metadata() or ()
    for key, value in trailing:
        if key == _DETAILS_KEY and isinstance(value, bytes):
            try:
                status = status_pb2.Status.FromString(value)
            except DecodeError:  # malformed details must not turn a clear status into a 500
                continue
            details.extend(status.details)
            if status.message:
                message = status.message
    return http_status(number), error_body(number, message, details)
