"""Domain errors and their gRPC statuses.

Handlers raise these; the server interceptor (common.rpc) turns them into a
gRPC status carrying google.rpc details, so a client gets the code, a reason a
person understands and, for malformed input, which field is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class DomainError(Exception):
    """A request the registry refuses. Never a bug: a bug is INTERNAL."""

    code: grpc.StatusCode = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(
        self, message: str, *, reason: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        # A stable machine-readable reason (google.rpc.ErrorInfo.reason),
        # e.g. "MOTHER_ID_MISMATCH"; tests and the gateway branch on it.
        self.reason = reason
        # ErrorInfo.metadata: what a program needs to act on the error without
        # parsing the message (e.g. the id of a dossier stored all the same).
        self.metadata = dict(metadata or {})


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: list[FieldViolation]) -> None:
        summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(f"invalid request: {summary}", reason="INVALID_ARGUMENT")
        self.violations = violations

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field, description)])


class NotDecodable(InvalidArgument):
    """Bytes that do not decode as the request message (or, in a stream, as
    one of its messages): nothing of the request can be read."""

    def __init__(self, type_name: str, *, position: int | None = None) -> None:
        where = "(request)" if position is None else f"message[{position}]"
        what = "the request" if position is None else f"message {position} of the stream"
        DomainError.__init__(
            self, f"{what} is not a valid {type_name}", reason="REQUEST_NOT_DECODABLE"
        )
        self.violations = [FieldViolation(where, f"is not a valid {type_name}")]


class PermissionDenied(DomainError):
    """The caller's identity is not granted the method (common/access.py)."""

    code = grpc.StatusCode.PERMISSION_DENIED

    def __init__(self, caller: str, method: str, message: str) -> None:
        super().__init__(
            message, reason="ACCESS_DENIED", metadata={"caller": caller, "method": method}
        )


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS


class Unavailable(DomainError):
    """Not now, but the same request may be sent again later (retryable);
    the message says what was done meanwhile."""

    code = grpc.StatusCode.UNAVAILABLE

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        metadata: Mapping[str, str] | None = None,
        retry_after_seconds: float = 1.0,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.retry_after_seconds = retry_after_seconds


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo a failed call carries in its status details (the reason
    and metadata common.rpc puts there), if any: the client's side of the
    errors above."""
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    return None
