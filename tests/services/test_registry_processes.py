"""Every registry as a real process (`python -m services.<name>`): answers the
standard health check, lists its service through reflection, and keeps what
it acknowledged across a kill -9."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from cli.stack import Stack
from lienthong.common.v1.common_pb2 import SEX_FEMALE
from lienthong.health.v1 import health_pb2 as hospital
from lienthong.health.v1 import health_pb2_grpc as hospital_grpc
from lienthong.insurance.v1 import insurance_pb2 as vss
from lienthong.insurance.v1 import insurance_pb2_grpc as vss_grpc

SERVICES = {
    "health": "lienthong.health.v1.HealthRegistryService",
    "population": "lienthong.population.v1.PopulationRegistryService",
    "insurance": "lienthong.insurance.v1.InsuranceRegistryService",
}


@pytest.fixture(scope="module")
def registries() -> Iterator[Stack]:
    with Stack(broker=None) as stack:
        yield stack


async def _listed(channel: grpc.aio.Channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    async for answer in stub.ServerReflectionInfo(ask()):
        return {s.name for s in answer.list_services_response.service}
    return set()


@pytest.mark.parametrize("name", sorted(SERVICES))
async def test_serves_health_and_reflection(registries: Stack, name: str) -> None:
    async with registries.channel(name, "conformance") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        answer = await health.Check(health_pb2.HealthCheckRequest(service=SERVICES[name]))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        assert SERVICES[name] in await _listed(channel)


async def _one(
    message: hospital.SeedHospitalRecordsRequest,
) -> AsyncIterator[hospital.SeedHospitalRecordsRequest]:
    yield message


async def test_acknowledged_writes_survive_kill_9(registries: Stack) -> None:
    async with registries.channel("health", "conformance") as channel:
        stub = hospital_grpc.HealthRegistryServiceStub(channel)
        await stub.SeedHospitalRecords(
            _one(
                hospital.SeedHospitalRecordsRequest(
                    facilities=[
                        hospital.MedicalFacility(code="01001", name="BV", province_code="001")
                    ]
                )
            )
        )
        certificate = (
            await stub.IssueBirthCertificate(
                hospital.IssueBirthCertificateRequest(
                    request_id="kill-1",
                    facility_code="01001",
                    mother_id_number="001190123456",
                    mother_full_name="Lan",
                    child_sex=SEX_FEMALE,
                    date_of_birth="2024-05-01",
                    time_of_birth="08:00",
                    birth_weight_grams=3000,
                )
            )
        ).certificate
    async with registries.channel("insurance", "conformance") as channel:
        card = (
            await vss_grpc.InsuranceRegistryServiceStub(channel).IssueChildHealthInsuranceCard(
                vss.IssueChildHealthInsuranceCardRequest(
                    request_id="kill-2",
                    personal_id_number="001324000001",
                    full_name="An",
                    date_of_birth="2024-05-01",
                    sex=SEX_FEMALE,
                    province_code="001",
                    initial_facility_code="01001",
                )
            )
        ).card

    for name in ("health", "insurance"):
        registries.kill(name)
        registries.start_component(name)

    async with registries.channel("health", "conformance") as channel:
        found = await hospital_grpc.HealthRegistryServiceStub(channel).VerifyBirthCertificate(
            hospital.VerifyBirthCertificateRequest(
                certificate_number=certificate.certificate_number,
                mother_id_number="001190123456",
            )
        )
        assert found.certificate == certificate
    async with registries.channel("insurance", "conformance") as channel:
        participant = (
            await vss_grpc.InsuranceRegistryServiceStub(channel).GetParticipant(
                vss.GetParticipantRequest(personal_id_number="001324000001")
            )
        ).participant
        assert participant.card.social_insurance_number == card.social_insurance_number
