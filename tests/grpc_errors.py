"""Read the google.rpc details of a failed call, for assertions."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass
class CallError:
    code: grpc.StatusCode
    message: str
    reason: str
    field_violations: dict[str, str]


def call_error(error: grpc.aio.AioRpcError) -> CallError:
    status = rpc_status.from_call(error)
    reason = ""
    fields: dict[str, str] = {}
    if status is not None:
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            bad = error_details_pb2.BadRequest()
            if detail.Unpack(info):
                reason = info.reason
            elif detail.Unpack(bad):
                fields = {v.field: v.description for v in bad.field_violations}
    return CallError(error.code(), error.details() or "", reason, fields)
