"""Read the google.rpc details of a failed call, for assertions."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass
class CallError:
    code: grpc.StatusCode
    message: str
    reason: str
    field_violations: dict[str, str]
    # ErrorInfo.metadata, and RetryInfo.retry_delay in seconds (None if absent).
    metadata: dict[str, str] = field(default_factory=dict)
    retry_delay: float | None = None


def call_error(error: grpc.aio.AioRpcError) -> CallError:
    status = rpc_status.from_call(error)
    reason = ""
    fields: dict[str, str] = {}
    metadata: dict[str, str] = {}
    retry_delay: float | None = None
    if status is not None:
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            bad = error_details_pb2.BadRequest()
            retry = error_details_pb2.RetryInfo()
            if detail.Unpack(info):
                reason = info.reason
                metadata = dict(info.metadata)
            elif detail.Unpack(bad):
                fields = {v.field: v.description for v in bad.field_violations}
            elif detail.Unpack(retry):
                retry_delay = retry.retry_delay.ToTimedelta().total_seconds()
    return CallError(error.code(), error.details() or "", reason, fields, metadata, retry_delay)


async def outcome(call: Awaitable[Any]) -> Any:
    """The response, or the refusal as CODE:REASON (for calls sent at once)."""
    try:
        return await call
    except grpc.aio.AioRpcError as error:
        refusal = call_error(error)
        return f"{refusal.code.name}:{refusal.reason}"
