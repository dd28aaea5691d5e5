"""Two hospital registries (real gRPC on loopback) over ONE PostgreSQL
database: birth certificates issued on both at once in one facility get
distinct numbers without a gap; one death notice per person when the death
is declared on both replicas at once; a request sent to both has one answer.

The expected numbers are written out by hand."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lienthong.health.v1 import health_pb2 as pb
from lienthong.health.v1 import health_pb2_grpc as pb_grpc
from services.health.app import build
from tests.grpc_errors import outcome
from tests.services.test_health import HANOI_HOSPITAL, birth_request, seed

BIRTHS = 40  # half sent to each replica
DEATHS = 10  # each declared twice at once (two request ids), once on each replica


@pytest.fixture
async def stubs(start: Any, postgres_url: str) -> list[Any]:
    started = [await start(build, database=postgres_url) for _ in range(2)]
    both = [pb_grpc.HealthRegistryServiceStub(r.channel) for r in started]
    await seed(both[0], pb.SeedHospitalRecordsRequest(facilities=[HANOI_HOSPITAL]))
    return both


def death(request_id: str, n: int) -> pb.IssueDeathNoticeRequest:
    return pb.IssueDeathNoticeRequest(
        request_id=request_id,
        facility_code="01001",
        deceased_id_number=f"001150{n:06d}",
        date_of_death="2025-01-02",
        time_of_death="23:10",
        cause="stroke",
    )


async def test_two_replicas_number_in_turn_and_issue_one_death_notice_a_person(
    stubs: list[Any],
) -> None:
    births = [
        outcome(stubs[n % 2].IssueBirthCertificate(birth_request(f"birth-{n}")))
        for n in range(BIRTHS)
    ]
    repeat = birth_request("same")
    repeats = [outcome(s.IssueBirthCertificate(repeat)) for s in stubs]
    deaths = [
        outcome(s.IssueDeathNotice(death(f"death-{n}-{side}", n)))
        for n in range(DEATHS)
        for side, s in enumerate(stubs)
    ]
    results = await asyncio.gather(*births, *repeats, *deaths)
    issued, repeated, declared = (
        results[:BIRTHS],
        results[BIRTHS : BIRTHS + 2],
        results[BIRTHS + 2 :],
    )

    assert all(isinstance(r, pb.IssueBirthCertificateResponse) for r in issued), issued
    assert repeated[0] == repeated[1], "a repeat on the other replica gets the same answer"
    numbers = sorted(r.certificate.certificate_number for r in [*issued, repeated[0]])
    assert numbers == [f"GCS-01001-{n:07d}" for n in range(1, BIRTHS + 2)]

    notices = []
    for n in range(DEATHS):
        pair = declared[2 * n : 2 * n + 2]
        accepted = [o for o in pair if isinstance(o, pb.IssueDeathNoticeResponse)]
        assert len(accepted) == 1, pair
        assert "ALREADY_EXISTS:DEATH_NOTICE_EXISTS" in pair, pair
        notices.append(accepted[0].notice.notice_number)
    assert sorted(notices) == [f"GBT-01001-{n:07d}" for n in range(1, DEATHS + 1)]
