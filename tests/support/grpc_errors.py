"""Read google.rpc rich error details from a failed call."""

from __future__ import annotations

from typing import Any, TypeVar, cast

from google.protobuf.message import Message
from google.rpc import status_pb2
from grpc.aio import AioRpcError

_DETAILS_KEY = "grpc-status-details-bin"

M = TypeVar("M", bound=Message)


def rich_status(error: AioRpcError) -> status_pb2.Status:
    """The google.rpc.Status carried in the trailing metadata (empty Status when there is none)."""
    for key, value in cast(Any, error.trailing_metadata()) or ():
        if key == _DETAILS_KEY:
            return status_pb2.Status.FromString(value)
    return status_pb2.Status()


def detail(error: AioRpcError, kind: type[M]) -> M | None:
    """The first detail of the given type (BadRequest, ErrorInfo ...), or None."""
    for item in rich_status(error).details:
        message = kind()
        if item.Unpack(message):
            return message
    return None


__all__ = ["detail", "rich_status"]
