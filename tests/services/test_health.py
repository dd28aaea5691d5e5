"""The hospital registry over real gRPC on loopback, with a real SQLite file."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from lienthong.common.v1.common_pb2 import SEX_FEMALE, SEX_MALE
from lienthong.health.v1 import health_pb2 as pb
from lienthong.health.v1 import health_pb2_grpc as pb_grpc
from services.health.app import build
from tests.grpc_errors import call_error

MOTHER = "001190123456"
OTHER = "079185000321"
HANOI_HOSPITAL = pb.MedicalFacility(
    code="01001", name="Bệnh viện Phụ sản Hà Nội", province_code="001"
)


async def seed(
    stub: Any, *batches: pb.SeedHospitalRecordsRequest
) -> pb.SeedHospitalRecordsResponse:
    async def stream() -> AsyncIterator[pb.SeedHospitalRecordsRequest]:
        for batch in batches:
            yield batch

    response: pb.SeedHospitalRecordsResponse = await stub.SeedHospitalRecords(stream())
    return response


@pytest.fixture
async def stub(start: Any) -> pb_grpc.HealthRegistryServiceAsyncStub:
    registry = await start(build)
    stub: pb_grpc.HealthRegistryServiceAsyncStub = pb_grpc.HealthRegistryServiceStub(
        registry.channel
    )
    await seed(stub, pb.SeedHospitalRecordsRequest(facilities=[HANOI_HOSPITAL]))
    return stub


def birth_request(request_id: str = "req-1", **overrides: Any) -> pb.IssueBirthCertificateRequest:
    fields: dict[str, Any] = {
        "request_id": request_id,
        "facility_code": "01001",
        "mother_id_number": MOTHER,
        "mother_full_name": "Nguyễn Thị Lan",
        "child_sex": SEX_FEMALE,
        "date_of_birth": "2024-05-01",
        "time_of_birth": "08:30",
        "birth_weight_grams": 3100,
    }
    fields.update(overrides)
    return pb.IssueBirthCertificateRequest(**fields)


async def test_issued_birth_certificate_verifies_for_its_mother_only(stub: Any) -> None:
    issued = (await stub.IssueBirthCertificate(birth_request())).certificate
    assert issued.certificate_number.startswith("GCS-01001-")

    verified = await stub.VerifyBirthCertificate(
        pb.VerifyBirthCertificateRequest(
            certificate_number=issued.certificate_number, mother_id_number=MOTHER
        )
    )
    assert verified.certificate == issued

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.VerifyBirthCertificate(
            pb.VerifyBirthCertificateRequest(
                certificate_number=issued.certificate_number, mother_id_number=OTHER
            )
        )
    error = call_error(raised.value)
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "MOTHER_ID_MISMATCH"
    assert "mother" in error.message


async def test_unknown_birth_certificate_is_not_found(stub: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.VerifyBirthCertificate(
            pb.VerifyBirthCertificateRequest(certificate_number="GCS-NOPE", mother_id_number=MOTHER)
        )
    assert call_error(raised.value).reason == "BIRTH_CERTIFICATE_NOT_FOUND"
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_repeated_request_id_returns_first_answer_and_issues_once(stub: Any) -> None:
    first = await stub.IssueBirthCertificate(birth_request("same"))
    again = await stub.IssueBirthCertificate(birth_request("same"))
    assert again == first
    other = await stub.IssueBirthCertificate(birth_request("another"))
    assert other.certificate.certificate_number != first.certificate.certificate_number


async def test_request_id_reused_for_a_different_request_is_refused(stub: Any) -> None:
    await stub.IssueBirthCertificate(birth_request("reused"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.IssueBirthCertificate(birth_request("reused", child_sex=SEX_MALE))
    error = call_error(raised.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in error.field_violations


async def test_malformed_request_names_each_bad_field(stub: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.IssueBirthCertificate(
            birth_request(mother_id_number="12345", date_of_birth="01/05/2024", child_sex=0)
        )
    error = call_error(raised.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.field_violations["mother_id_number"] == (
        "must be a 12-digit personal identification number"
    )
    assert "YYYY-MM-DD" in error.field_violations["date_of_birth"]
    assert "child_sex" in error.field_violations


async def test_impossible_or_future_dates_are_invalid(stub: Any) -> None:
    for bad in ("2024-02-30", (dt.date.today() + dt.timedelta(days=2)).isoformat()):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.IssueBirthCertificate(birth_request(f"r-{bad}", date_of_birth=bad))
        assert call_error(raised.value).field_violations.keys() == {"date_of_birth"}


async def test_unknown_facility_is_not_found(stub: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.IssueBirthCertificate(birth_request(facility_code="99999"))
    assert call_error(raised.value).reason == "FACILITY_NOT_FOUND"


async def test_one_death_notice_per_person(stub: Any) -> None:
    request = pb.IssueDeathNoticeRequest(
        request_id="d1",
        facility_code="01001",
        deceased_id_number=OTHER,
        date_of_death="2025-01-02",
        time_of_death="23:10",
        cause="stroke",
    )
    notice = (await stub.IssueDeathNotice(request)).notice
    verified = await stub.VerifyDeathNotice(
        pb.VerifyDeathNoticeRequest(notice_number=notice.notice_number, deceased_id_number=OTHER)
    )
    assert verified.notice == notice
    request.request_id = "d2"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.IssueDeathNotice(request)
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.VerifyDeathNotice(
            pb.VerifyDeathNoticeRequest(
                notice_number=notice.notice_number, deceased_id_number=MOTHER
            )
        )
    assert call_error(raised.value).reason == "DECEASED_ID_MISMATCH"


async def test_seed_is_all_or_nothing_and_replayable(stub: Any) -> None:
    good = pb.BirthCertificate(
        certificate_number="GCS-SEED-1",
        facility_code="01001",
        mother_id_number=MOTHER,
        mother_full_name="Lan",
        child_sex=SEX_MALE,
        date_of_birth="2024-01-01",
        time_of_birth="01:00",
        birth_weight_grams=3000,
        issued_on="2024-01-01",
    )
    bad = pb.BirthCertificate()
    bad.CopyFrom(good)
    bad.certificate_number = "GCS-SEED-2"
    bad.date_of_birth = "2024-13-01"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await seed(
            stub,
            pb.SeedHospitalRecordsRequest(birth_certificates=[good]),
            pb.SeedHospitalRecordsRequest(birth_certificates=[bad]),
        )
    assert (
        "batch[1].birth_certificates[0].date_of_birth" in call_error(raised.value).field_violations
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.VerifyBirthCertificate(
            pb.VerifyBirthCertificateRequest(
                certificate_number="GCS-SEED-1", mother_id_number=MOTHER
            )
        )
    added = await seed(stub, pb.SeedHospitalRecordsRequest(birth_certificates=[good]))
    assert added.birth_certificates == 1
    replayed = await seed(stub, pb.SeedHospitalRecordsRequest(birth_certificates=[good]))
    assert replayed.birth_certificates == 0
