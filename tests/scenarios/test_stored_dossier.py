"""The replay follows a submission the gateway stored while the broker was
away (UNAVAILABLE, reason BROKER_UNAVAILABLE, the dossier id in metadata)."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from scenarios.replay import stored_dossier


def refusal(reason: str, metadata: dict[str, str]) -> grpc.aio.AioRpcError:
    info = error_details_pb2.ErrorInfo(reason=reason, domain="lienthong", metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message="broker away", details=[detail])
    trailing = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
    return grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), trailing, details="broker away"
    )


def test_a_submission_stored_while_the_broker_was_away_names_its_dossier() -> None:
    error = refusal("BROKER_UNAVAILABLE", {"dossier_id": "birth-0123456789abcdef"})
    assert stored_dossier(error) == "birth-0123456789abcdef"


def test_other_refusals_name_none() -> None:
    assert stored_dossier(refusal("OVERLOADED", {"dossier_id": "birth-1"})) is None
    assert stored_dossier(refusal("BROKER_UNAVAILABLE", {})) is None
    bare = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), details="down"
    )
    assert stored_dossier(bare) is None
