"""The health kit against our hospital registry (in-process, real gRPC, a
real SQLite file, and once a real PostgreSQL database): ours passes every
rule; a registry that verifies a birth certificate for any mother, and one
whose ledger forgets, each fail the rules named for them."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.contracts import CONTRACTS
from conformance.runner import run
from lienthong.health.v1 import health_pb2 as pb
from services.health.app import build
from services.health.servicer import HealthRegistryServicer
from services.health.store import HospitalStore
from tests.conformance.variants import failed, with_servicer

RULES = CONTRACTS["health"].rules


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
async def test_our_registry_passes_every_rule(
    start: Any, engine: str, request: pytest.FixtureRequest
) -> None:
    database = request.getfixturevalue("postgres_url") if engine == "postgres" else None
    registry = await start(build, database=database)
    assert failed(await run(registry.address, RULES)) == {}


class AnyMother(HealthRegistryServicer):
    """Answers a birth certificate whoever is named as the mother."""

    async def VerifyBirthCertificate(
        self, request: pb.VerifyBirthCertificateRequest, context: Any
    ) -> pb.VerifyBirthCertificateResponse:
        found = await self.calls.database.run(
            lambda conn: HospitalStore(conn).birth_certificate(request.certificate_number)
        )
        if found is not None:
            request = pb.VerifyBirthCertificateRequest(
                certificate_number=request.certificate_number,
                mother_id_number=found["mother_id_number"],
            )
        return await super().VerifyBirthCertificate(request, context)


async def test_a_certificate_verified_for_any_mother_fails_the_mismatch_rule(start: Any) -> None:
    registry = await start(with_servicer(build, AnyMother))
    broken = failed(await run(registry.address, RULES))
    assert set(broken) == {"health.verify_birth_certificate.mother_mismatch"}
    assert "expected FAILED_PRECONDITION reason MOTHER_ID_MISMATCH, got OK" in next(
        iter(broken.values())
    )


class ForgetfulLedger(HealthRegistryServicer):
    """IssueBirthCertificate runs afresh each time: a repeat issues a second one."""

    async def IssueBirthCertificate(
        self, request: pb.IssueBirthCertificateRequest, context: Any
    ) -> pb.IssueBirthCertificateResponse:
        return await self.calls.run(lambda registry: registry.issue_birth_certificate(request))


async def test_a_ledger_that_forgets_fails_the_repeat_rules(start: Any) -> None:
    registry = await start(with_servicer(build, ForgetfulLedger))
    broken = failed(await run(registry.address, RULES))
    assert set(broken) == {
        "health.issue_birth_certificate.idempotent_repeat",
        "health.issue_birth_certificate.request_id_reused",
    }
