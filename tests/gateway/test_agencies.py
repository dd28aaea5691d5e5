"""How an agency's answer is read: a failure the agency did not decide is
retried, a refusal is the agency's reason. Real gRPC on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from gateway.agencies import Agencies, AgencyRefusalError, TransientAgencyError
from lienthong.health.v1 import health_pb2, health_pb2_grpc


class Hospital(health_pb2_grpc.HealthRegistryServiceServicer):
    async def GetFacility(self, request: Any, context: Any) -> Any:
        # What an overloaded server answers for a call it dropped unstarted.
        await context.abort(grpc.StatusCode.CANCELLED, "dropped")

    async def VerifyBirthCertificate(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such certificate")


@pytest.fixture
async def agencies() -> AsyncIterator[Agencies]:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthRegistryServiceServicer_to_server(Hospital(), server)  # type: ignore[abstract]
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    connected = Agencies.connect(
        {"population": address, "insurance": address, "health": address}, deadline_seconds=10
    )
    yield connected
    await connected.close()
    await server.stop(None)


async def test_a_cancelled_call_is_retried_never_taken_for_a_refusal(agencies: Agencies) -> None:
    # CANCELLED is never an agency's decision about a dossier; taken for one,
    # it rejected 634 births in a chaos replay on an overloaded machine.
    with pytest.raises(TransientAgencyError, match="CANCELLED"):
        await agencies.call(
            "health",
            agencies.health.GetFacility,
            health_pb2.GetFacilityRequest(code="01001"),
            "dossier-1",
        )


async def test_an_agency_s_own_answer_is_its_refusal(agencies: Agencies) -> None:
    with pytest.raises(AgencyRefusalError) as refused:
        await agencies.call(
            "health",
            agencies.health.VerifyBirthCertificate,
            health_pb2.VerifyBirthCertificateRequest(
                certificate_number="GCS-1", mother_id_number="001190000001"
            ),
            "dossier-1",
        )
    assert (refused.value.agency, refused.value.reason) == ("health", "NOT_FOUND")
