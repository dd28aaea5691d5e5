"""A failed gRPC call in words: its code, message, reason and field violations.

The servers put google.rpc details in the status (ErrorInfo with a stable
reason, BadRequest naming each bad field); this reads them back so the CLI can
say "declarant.personal_id_number: must be a 12-digit ..." instead of a dump.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class RpcFailure:
    code: grpc.StatusCode
    message: str
    reason: str = ""
    field_violations: list[tuple[str, str]] = field(default_factory=list)

    @property
    def unreachable(self) -> bool:
        """Nobody answered (no server, wrong port), as opposed to a refusal.
        A server that answered UNAVAILABLE with a reason did answer (the
        gateway, while its message broker is down: the dossier is stored)."""
        return (
            self.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            and not self.reason
        )


def describe(error: grpc.RpcError) -> RpcFailure:
    # A blocking call's error is a grpc.Call; an asyncio one's (the web
    # console's channel) an AioRpcError, which has the same accessors.
    call = error if isinstance(error, grpc.Call | grpc.aio.AioRpcError) else None
    code = call.code() if call is not None else grpc.StatusCode.UNKNOWN
    message = (call.details() if call is not None else None) or str(error)
    reason = ""
    violations: list[tuple[str, str]] = []
    status = rpc_status.from_call(call) if call is not None else None
    if status is not None:
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            bad = error_details_pb2.BadRequest()
            if detail.Is(info.DESCRIPTOR):
                detail.Unpack(info)
                reason = info.reason
            elif detail.Is(bad.DESCRIPTOR):
                detail.Unpack(bad)
                violations.extend((v.field, v.description) for v in bad.field_violations)
    return RpcFailure(code, message, reason, violations)
