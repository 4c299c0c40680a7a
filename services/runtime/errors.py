"""Domain errors: what went wrong, in terms a caller can act on, without any transport.

Domain modules raise these; the server interceptor (``interceptors.py``) turns them into gRPC
status codes with google.rpc details, and the gateway into HTTP statuses. A domain module never
imports grpc.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "Code",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "LimitExceeded",
    "MediasuiteError",
    "NotFound",
    "PermissionDenied",
    "Unavailable",
]


class Code(enum.Enum):
    """The gRPC status codes a domain error may carry (names equal grpc.StatusCode names)."""

    CANCELLED = 1
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    UNAVAILABLE = 14
    UNAUTHENTICATED = 16


@dataclass(frozen=True)
class FieldViolation:
    """One request field at fault (google.rpc.BadRequest.FieldViolation)."""

    field: str
    description: str


class MediasuiteError(Exception):
    """Base of every domain error: a code, a message a person can act on, and structured details.

    ``reason`` and ``metadata`` become a google.rpc.ErrorInfo (domain "mediasuite"), field
    violations a google.rpc.BadRequest.
    """

    code: Code = Code.FAILED_PRECONDITION

    def __init__(
        self,
        message: str,
        *,
        violations: Iterable[FieldViolation] = (),
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.violations = tuple(violations)
        self.reason = reason
        self.metadata = dict(metadata or {})


class InvalidArgument(MediasuiteError):
    """A request value is wrong, or media cannot be decoded. Name the field when one is at fault."""

    code = Code.INVALID_ARGUMENT

    def __init__(
        self,
        message: str,
        *,
        field: str = "",
        violations: Iterable[FieldViolation] = (),
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        found = list(violations)
        if field:
            found.insert(0, FieldViolation(field, message))
        super().__init__(message, violations=found, reason=reason, metadata=metadata)
        self.field = field


class NotFound(MediasuiteError):
    """The named thing does not exist."""

    code = Code.NOT_FOUND


class PermissionDenied(MediasuiteError):
    """The caller may not do this (a path outside the media root, a scope missing)."""

    code = Code.PERMISSION_DENIED


class FailedPrecondition(MediasuiteError):
    """The system is not in a state where this can be done (cancelling a finished batch)."""

    code = Code.FAILED_PRECONDITION


class Unavailable(MediasuiteError):
    """A dependency is down; retrying later may succeed."""

    code = Code.UNAVAILABLE


class DeadlineExceeded(MediasuiteError):
    """An operation ran out of time."""

    code = Code.DEADLINE_EXCEEDED


class LimitExceeded(MediasuiteError):
    """A configured limit was exceeded: RESOURCE_EXHAUSTED naming the limit, its value and its variable."""

    code = Code.RESOURCE_EXHAUSTED

    def __init__(
        self,
        limit: str,
        maximum: int | float,
        actual: int | float | None = None,
        *,
        env: str = "",
        what: str = "",
    ) -> None:
        subject = what or limit
        got = f" ({_number(actual)})" if actual is not None else ""
        hint = f"; raise {env} to allow more" if env else ""
        message = f"{subject}{got} exceeds the limit {limit}={_number(maximum)}{hint}"
        metadata = {"limit": limit, "maximum": _number(maximum)}
        if actual is not None:
            metadata["actual"] = _number(actual)
        if env:
            metadata["env"] = env
        super().__init__(message, reason="LIMIT_EXCEEDED", metadata=metadata)
        self.limit = limit
        self.maximum = maximum
        self.actual = actual


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
