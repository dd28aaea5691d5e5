"""The hospital registry over real gRPC on loopback, with a real SQLite file
or a real PostgreSQL database (every test using the `stub` fixture runs on both)."""

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
from services.health.config import load_config
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


@pytest.fixture(params=["sqlite", "postgres"])
async def stub(
    start: Any, request: pytest.FixtureRequest
) -> pb_grpc.HealthRegistryServiceAsyncStub:
    """The registry over each engine: its rules must not depend on which."""
    database = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    registry = await start(build, database=database)
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


# --- Seeding: every record checked, every key once ------------------------------


def certificate(number: str = "GCS-01001-0000001", **overrides: Any) -> pb.BirthCertificate:
    fields: dict[str, Any] = {
        "certificate_number": number,
        "facility_code": "01001",
        "mother_id_number": MOTHER,
        "mother_full_name": "Nguyễn Thị Lan",
        "child_sex": SEX_FEMALE,
        "date_of_birth": "2024-05-01",
        "time_of_birth": "08:30",
        "birth_weight_grams": 3100,
        "issued_on": "2024-05-02",
    }
    fields.update(overrides)
    return pb.BirthCertificate(**fields)


def notice(number: str = "GBT-01001-0000001", **overrides: Any) -> pb.DeathNotice:
    fields: dict[str, Any] = {
        "notice_number": number,
        "facility_code": "01001",
        "deceased_id_number": OTHER,
        "date_of_death": "2024-06-01",
        "time_of_death": "06:00",
        "issued_on": "2024-06-01",
    }
    fields.update(overrides)
    return pb.DeathNotice(**fields)


async def seed_refused(stub: Any, *batches: pb.SeedHospitalRecordsRequest) -> Any:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await seed(stub, *batches)
    return call_error(raised.value)


IN_TWO_DAYS = (dt.date.today() + dt.timedelta(days=2)).isoformat()


@pytest.mark.parametrize(
    ("batch", "field", "words"),
    [
        (
            pb.SeedHospitalRecordsRequest(
                facilities=[pb.MedicalFacility(code="00001", name="Nowhere", province_code="000")]
            ),
            "facilities[0].province_code",
            "000 is not a province code",
        ),
        (
            pb.SeedHospitalRecordsRequest(
                birth_certificates=[certificate(date_of_birth=IN_TWO_DAYS)]
            ),
            "birth_certificates[0].date_of_birth",
            f"{IN_TWO_DAYS} is in the future",
        ),
        (
            pb.SeedHospitalRecordsRequest(birth_certificates=[certificate(issued_on="2024-13-01")]),
            "birth_certificates[0].issued_on",
            "not a real date",
        ),
        (
            pb.SeedHospitalRecordsRequest(birth_certificates=[certificate(issued_on="2024-04-30")]),
            "birth_certificates[0].issued_on",
            "is before the date of birth",
        ),
        (
            pb.SeedHospitalRecordsRequest(death_notices=[notice(date_of_death="2099-01-01")]),
            "death_notices[0].date_of_death",
            "2099-01-01 is in the future",
        ),
        (
            pb.SeedHospitalRecordsRequest(birth_certificates=[certificate(facility_code="99999")]),
            "birth_certificates[0].facility_code",
            "no medical facility has code 99999",
        ),
    ],
)
async def test_a_bad_seeded_record_is_named_and_nothing_is_written(
    stub: Any, batch: pb.SeedHospitalRecordsRequest, field: str, words: str
) -> None:
    good = pb.SeedHospitalRecordsRequest(birth_certificates=[certificate("GCS-01001-GOOD")])
    error = await seed_refused(stub, good, batch)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.field_violations.keys() == {f"batch[1].{field}"}
    assert words in error.field_violations[f"batch[1].{field}"]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.VerifyBirthCertificate(
            pb.VerifyBirthCertificateRequest(
                certificate_number="GCS-01001-GOOD", mother_id_number=MOTHER
            )
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("second", "field", "words"),
    [
        (
            pb.SeedHospitalRecordsRequest(
                facilities=[pb.MedicalFacility(code="01001", name="Khác", province_code="001")]
            ),
            "facilities[0].code",
            "is also the facility code of batch[0].facilities[0]",
        ),
        (
            pb.SeedHospitalRecordsRequest(birth_certificates=[certificate(mother_id_number=OTHER)]),
            "birth_certificates[0].certificate_number",
            "is also the certificate number of batch[0].birth_certificates[0]",
        ),
        (
            pb.SeedHospitalRecordsRequest(death_notices=[notice("GBT-01001-0000002")]),
            "death_notices[0].deceased_id_number",
            "is also the deceased (one death notice a person) of batch[0].death_notices[0]",
        ),
    ],
)
async def test_a_key_twice_in_one_stream_is_refused_not_dropped(
    stub: Any, second: pb.SeedHospitalRecordsRequest, field: str, words: str
) -> None:
    first = pb.SeedHospitalRecordsRequest(
        facilities=[HANOI_HOSPITAL], birth_certificates=[certificate()], death_notices=[notice()]
    )
    error = await seed_refused(stub, first, second)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.field_violations == {f"batch[1].{field}": words}


async def test_a_stored_key_is_a_replay_only_for_the_same_record(stub: Any) -> None:
    stored = pb.SeedHospitalRecordsRequest(
        facilities=[HANOI_HOSPITAL], birth_certificates=[certificate()], death_notices=[notice()]
    )
    await seed(stub, stored)
    replayed = await seed(stub, stored)
    assert (replayed.facilities, replayed.birth_certificates, replayed.death_notices) == (0, 0, 0)
    new = certificate("GCS-01001-0000009")
    for conflicting, reason in (
        (
            pb.SeedHospitalRecordsRequest(
                facilities=[pb.MedicalFacility(code="01001", name="Khác", province_code="079")]
            ),
            "FACILITY_CODE_TAKEN",
        ),
        (
            pb.SeedHospitalRecordsRequest(
                birth_certificates=[certificate(date_of_birth="2024-05-02")]
            ),
            "CERTIFICATE_NUMBER_TAKEN",
        ),
        (
            pb.SeedHospitalRecordsRequest(death_notices=[notice(deceased_id_number=MOTHER)]),
            "NOTICE_NUMBER_TAKEN",
        ),
        (
            pb.SeedHospitalRecordsRequest(death_notices=[notice("GBT-01001-0000002")]),
            "DEATH_NOTICE_EXISTS",
        ),
    ):
        error = await seed_refused(
            stub, pb.SeedHospitalRecordsRequest(birth_certificates=[new]), conflicting
        )
        assert (error.code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, reason)
        assert error.message.startswith("batch[1].")
    # All or nothing: the new certificate sent alongside was not kept.
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.VerifyBirthCertificate(
            pb.VerifyBirthCertificateRequest(
                certificate_number=new.certificate_number, mother_id_number=MOTHER
            )
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(("tolerance", "accepted"), [("300", True), ("60", False)])
async def test_tomorrow_is_accepted_only_within_the_configured_clock_tolerance(
    start: Any, monkeypatch: pytest.MonkeyPatch, tolerance: str, accepted: bool
) -> None:
    # The shared clock starts at 23:57 in Vietnam: tomorrow is 180 s away.
    monkeypatch.setenv("LIENTHONG_CLOCK_START", "2025-09-15T16:57:00+00:00")
    monkeypatch.setenv("LIENTHONG_CLOCK_TOLERANCE_SECONDS", tolerance)
    config = load_config()
    registry = await start(lambda db: build(db, clock_tolerance=config.clock_tolerance))
    stub = pb_grpc.HealthRegistryServiceStub(registry.channel)
    await seed(stub, pb.SeedHospitalRecordsRequest(facilities=[HANOI_HOSPITAL]))
    call = stub.IssueBirthCertificate(birth_request(date_of_birth="2025-09-16"))
    if accepted:
        assert (await call).certificate.date_of_birth == "2025-09-16"
    else:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert call_error(raised.value).field_violations == {
            "date_of_birth": "2025-09-16 is in the future"
        }
