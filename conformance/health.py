"""The hospital registry's contract (lienthong.health.v1), rule by rule:
birth certificates (giấy chứng sinh) and death notices (giấy báo tử) issued
and verified, medical facilities, seeding.

The kit's facilities all carry the same name and province, so two runs that
draw the same random code meet a replay of their own record, not a conflict.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import grpc

from conformance import wire
from conformance.identity import NOT_A_PROVINCE, adult_birthday, id_number
from conformance.kit import CALL_TIMEOUT_SECONDS, Context, Failure, RuleBook
from conformance.wire import answer, expect, refusal, refused
from lienthong.common.v1.common_pb2 import SEX_FEMALE, SEX_MALE
from lienthong.health.v1 import health_pb2 as pb
from lienthong.health.v1 import health_pb2_grpc as pb_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["HealthRegistryService"]
book = RuleBook("health", SERVICE.full_name)
rule = book.rule

Code = grpc.StatusCode
T = CALL_TIMEOUT_SECONDS

FACILITY_NAME = "Bệnh viện kiểm thử (conformance)"
# The kit's facilities have codes 9xxxx; 00000 names no facility (no province 00).
NO_FACILITY = "00000"
DOCUMENT_NUMBER = "^[A-Z0-9-]{4,40}$"
SEED_ATTEMPTS = 5


def stub(ctx: Context) -> Any:
    return pb_grpc.HealthRegistryServiceStub(ctx.channel)


def _short(message: Any) -> str:
    return " ".join(str(message).split())[:160]


def is_document_number(value: str) -> bool:
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
    return 4 <= len(value) <= 40 and set(value) <= allowed


def seed_call(ctx: Context, *batches: pb.SeedHospitalRecordsRequest) -> Any:
    async def stream() -> AsyncIterator[pb.SeedHospitalRecordsRequest]:
        for batch in batches:
            yield batch

    return stub(ctx).SeedHospitalRecords(stream(), timeout=T)


def new_facility(ctx: Context) -> pb.MedicalFacility:
    return pb.MedicalFacility(
        code=f"9{ctx.fresh.digits(4)}", name=FACILITY_NAME, province_code="001"
    )


async def facility(ctx: Context) -> pb.MedicalFacility:
    """A facility of the kit's, seeded; another code when one is someone else's."""
    for _ in range(SEED_ATTEMPTS):
        candidate = new_facility(ctx)
        try:
            await seed_call(ctx, pb.SeedHospitalRecordsRequest(facilities=[candidate]))
        except grpc.aio.AioRpcError as error:
            if error.code() != Code.ALREADY_EXISTS:
                raise Failure(f"SeedHospitalRecords: {wire.Refusal.of(error)}") from None
            continue
        return candidate
    raise Failure(f"every one of {SEED_ATTEMPTS} facility codes tried is someone else's")


def mother_id(ctx: Context) -> str:
    return id_number(ctx, "001", adult_birthday(1975), SEX_FEMALE)


def birth_request(ctx: Context, code: str, **fields: Any) -> pb.IssueBirthCertificateRequest:
    values: dict[str, Any] = {
        "request_id": ctx.fresh.request_id(),
        "facility_code": code,
        "mother_id_number": mother_id(ctx),
        "mother_full_name": "Nguyễn Thị Lan",
        "child_sex": SEX_FEMALE,
        "date_of_birth": (ctx.today - dt.timedelta(days=2)).isoformat(),
        "time_of_birth": "08:15",
        "birth_weight_grams": 3100,
    }
    values.update(fields)
    return pb.IssueBirthCertificateRequest(**values)


async def certify_birth(ctx: Context, request: pb.IssueBirthCertificateRequest) -> Any:
    reply = await answer(
        stub(ctx).IssueBirthCertificate(request, timeout=T), "IssueBirthCertificate"
    )
    return reply.certificate


def death_request(ctx: Context, code: str, **fields: Any) -> pb.IssueDeathNoticeRequest:
    values: dict[str, Any] = {
        "request_id": ctx.fresh.request_id(),
        "facility_code": code,
        "deceased_id_number": id_number(ctx, "001", adult_birthday(1930, 1960), SEX_MALE),
        "date_of_death": (ctx.today - dt.timedelta(days=2)).isoformat(),
        "time_of_death": "22:40",
        "cause": "suy tim",
    }
    values.update(fields)
    return pb.IssueDeathNoticeRequest(**values)


async def notify_death(ctx: Context, request: pb.IssueDeathNoticeRequest) -> Any:
    reply = await answer(stub(ctx).IssueDeathNotice(request, timeout=T), "IssueDeathNotice")
    return reply.notice


# ---- birth certificates --------------------------------------------------------------


@rule(
    "issue_birth_certificate.happy_path",
    "a birth certificate is issued as declared, with a document number and the day of issue",
)
async def _(ctx: Context) -> str:
    place = await facility(ctx)
    request = birth_request(ctx, place.code)
    certificate = await certify_birth(ctx, request)
    for name in (
        "facility_code",
        "mother_id_number",
        "mother_full_name",
        "child_sex",
        "date_of_birth",
        "time_of_birth",
        "birth_weight_grams",
    ):
        expect(
            getattr(certificate, name) == getattr(request, name),
            f"certificate.{name} is {getattr(certificate, name)!r}, sent "
            f"{getattr(request, name)!r}",
        )
    number = certificate.certificate_number
    expect(is_document_number(number), f"certificate number {number!r} is not {DOCUMENT_NUMBER}")
    expect(bool(certificate.issued_on), "issued_on is empty")
    return f"{number} issued on {certificate.issued_on}"


@rule(
    "issue_birth_certificate.numbers_unique",
    "two births at one facility get two different certificate numbers",
)
async def _(ctx: Context) -> str:
    place = await facility(ctx)
    first = await certify_birth(ctx, birth_request(ctx, place.code))
    second = await certify_birth(ctx, birth_request(ctx, place.code))
    expect(
        first.certificate_number != second.certificate_number,
        f"both are {first.certificate_number}",
    )
    return f"{first.certificate_number}, {second.certificate_number}"


@rule(
    "issue_birth_certificate.idempotent_repeat",
    "the same request sent again returns the first certificate, not a second one",
)
async def _(ctx: Context) -> str:
    request = birth_request(ctx, (await facility(ctx)).code)
    first = await certify_birth(ctx, request)
    repeat = await certify_birth(ctx, request)
    expect(first == repeat, f"first {_short(first)}, repeat {_short(repeat)}")
    return f"both: {first.certificate_number}"


@rule(
    "issue_birth_certificate.request_id_reused",
    "a request id reused with another body is refused INVALID_ARGUMENT naming request_id",
)
async def _(ctx: Context) -> str:
    code = (await facility(ctx)).code
    request = birth_request(ctx, code)
    await certify_birth(ctx, request)
    other = birth_request(ctx, code, request_id=request.request_id)
    return await refusal(
        stub(ctx).IssueBirthCertificate(other, timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["request_id"],
    )


@rule(
    "issue_birth_certificate.facility_not_found",
    "a facility the registry does not know: NOT_FOUND FACILITY_NOT_FOUND",
)
async def _(ctx: Context) -> str:
    return await refusal(
        stub(ctx).IssueBirthCertificate(birth_request(ctx, NO_FACILITY), timeout=T),
        Code.NOT_FOUND,
        reason="FACILITY_NOT_FOUND",
    )


@rule(
    "issue_birth_certificate.future_birth",
    "a date of birth a month from now: INVALID_ARGUMENT naming date_of_birth",
)
async def _(ctx: Context) -> str:
    born = (ctx.today + dt.timedelta(days=30)).isoformat()
    request = birth_request(ctx, (await facility(ctx)).code, date_of_birth=born)
    return await refusal(
        stub(ctx).IssueBirthCertificate(request, timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["date_of_birth"],
    )


@rule(
    "issue_birth_certificate.mother_id_structure",
    "a mother's number of 12 digits whose first three are no province: INVALID_ARGUMENT "
    "naming mother_id_number",
)
async def _(ctx: Context) -> str:
    number = f"{NOT_A_PROVINCE}190{ctx.fresh.digits(6)}"
    request = birth_request(ctx, (await facility(ctx)).code, mother_id_number=number)
    return await refusal(
        stub(ctx).IssueBirthCertificate(request, timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["mother_id_number"],
    )


@rule(
    "issue_birth_certificate.field_violations",
    "an empty request: INVALID_ARGUMENT with a BadRequest naming every required field",
)
async def _(ctx: Context) -> str:
    return await refusal(
        stub(ctx).IssueBirthCertificate(pb.IssueBirthCertificateRequest(), timeout=T),
        Code.INVALID_ARGUMENT,
        fields=[
            "request_id",
            "facility_code",
            "mother_id_number",
            "mother_full_name",
            "child_sex",
            "date_of_birth",
            "time_of_birth",
            "birth_weight_grams",
        ],
    )


def verify_birth(number: str, mother: str) -> pb.VerifyBirthCertificateRequest:
    return pb.VerifyBirthCertificateRequest(certificate_number=number, mother_id_number=mother)


@rule(
    "verify_birth_certificate.happy_path",
    "an issued certificate, asked for with its mother's number, is answered as issued",
)
async def _(ctx: Context) -> str:
    request = birth_request(ctx, (await facility(ctx)).code)
    certificate = await certify_birth(ctx, request)
    reply = await answer(
        stub(ctx).VerifyBirthCertificate(
            verify_birth(certificate.certificate_number, request.mother_id_number), timeout=T
        ),
        "VerifyBirthCertificate",
    )
    expect(reply.certificate == certificate, f"verified {_short(reply.certificate)}")
    return f"{certificate.certificate_number} verified"


@rule(
    "verify_birth_certificate.not_found",
    "a certificate number nobody issued: NOT_FOUND BIRTH_CERTIFICATE_NOT_FOUND",
)
async def _(ctx: Context) -> str:
    request = verify_birth(f"GCS-NONE-{ctx.fresh.token(12)}", mother_id(ctx))
    return await refusal(
        stub(ctx).VerifyBirthCertificate(request, timeout=T),
        Code.NOT_FOUND,
        reason="BIRTH_CERTIFICATE_NOT_FOUND",
    )


@rule(
    "verify_birth_certificate.mother_mismatch",
    "a certificate asked for with another mother's number: FAILED_PRECONDITION MOTHER_ID_MISMATCH",
)
async def _(ctx: Context) -> str:
    certificate = await certify_birth(ctx, birth_request(ctx, (await facility(ctx)).code))
    request = verify_birth(certificate.certificate_number, mother_id(ctx))
    return await refusal(
        stub(ctx).VerifyBirthCertificate(request, timeout=T),
        Code.FAILED_PRECONDITION,
        reason="MOTHER_ID_MISMATCH",
    )


@rule(
    "verify_birth_certificate.field_violations",
    "an empty request: INVALID_ARGUMENT naming certificate_number and mother_id_number",
)
async def _(ctx: Context) -> str:
    return await refusal(
        stub(ctx).VerifyBirthCertificate(pb.VerifyBirthCertificateRequest(), timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["certificate_number", "mother_id_number"],
    )


# ---- death notices -----------------------------------------------------------------


@rule(
    "issue_death_notice.happy_path",
    "a death notice is issued as declared, with a document number and the day of issue",
)
async def _(ctx: Context) -> str:
    request = death_request(
        ctx, (await facility(ctx)).code, work_accident_or_occupational_disease=True
    )
    notice = await notify_death(ctx, request)
    for name in (
        "facility_code",
        "deceased_id_number",
        "date_of_death",
        "time_of_death",
        "cause",
        "work_accident_or_occupational_disease",
    ):
        expect(
            getattr(notice, name) == getattr(request, name),
            f"notice.{name} is {getattr(notice, name)!r}, sent {getattr(request, name)!r}",
        )
    expect(
        is_document_number(notice.notice_number),
        f"notice number {notice.notice_number!r} is not {DOCUMENT_NUMBER}",
    )
    expect(bool(notice.issued_on), "issued_on is empty")
    return f"{notice.notice_number} issued on {notice.issued_on}"


@rule(
    "issue_death_notice.one_per_person",
    "a second notice for the same person, under a new request id: ALREADY_EXISTS "
    "DEATH_NOTICE_EXISTS",
)
async def _(ctx: Context) -> str:
    code = (await facility(ctx)).code
    request = death_request(ctx, code)
    await notify_death(ctx, request)
    again = death_request(ctx, code, deceased_id_number=request.deceased_id_number)
    return await refusal(
        stub(ctx).IssueDeathNotice(again, timeout=T),
        Code.ALREADY_EXISTS,
        reason="DEATH_NOTICE_EXISTS",
    )


@rule(
    "issue_death_notice.idempotent_repeat",
    "the same request sent again returns the first notice (not DEATH_NOTICE_EXISTS)",
)
async def _(ctx: Context) -> str:
    request = death_request(ctx, (await facility(ctx)).code)
    first = await notify_death(ctx, request)
    repeat = await notify_death(ctx, request)
    expect(first == repeat, f"first {_short(first)}, repeat {_short(repeat)}")
    return f"both: {first.notice_number}"


@rule(
    "issue_death_notice.request_id_reused",
    "a request id reused with another body is refused INVALID_ARGUMENT naming request_id",
)
async def _(ctx: Context) -> str:
    code = (await facility(ctx)).code
    request = death_request(ctx, code)
    await notify_death(ctx, request)
    other = death_request(ctx, code, request_id=request.request_id)
    return await refusal(
        stub(ctx).IssueDeathNotice(other, timeout=T), Code.INVALID_ARGUMENT, fields=["request_id"]
    )


@rule(
    "issue_death_notice.facility_not_found",
    "a facility the registry does not know: NOT_FOUND FACILITY_NOT_FOUND",
)
async def _(ctx: Context) -> str:
    return await refusal(
        stub(ctx).IssueDeathNotice(death_request(ctx, NO_FACILITY), timeout=T),
        Code.NOT_FOUND,
        reason="FACILITY_NOT_FOUND",
    )


@rule(
    "issue_death_notice.future_death",
    "a date of death a month from now: INVALID_ARGUMENT naming date_of_death",
)
async def _(ctx: Context) -> str:
    died = (ctx.today + dt.timedelta(days=30)).isoformat()
    request = death_request(ctx, (await facility(ctx)).code, date_of_death=died)
    return await refusal(
        stub(ctx).IssueDeathNotice(request, timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["date_of_death"],
    )


@rule(
    "issue_death_notice.field_violations",
    "an empty request: INVALID_ARGUMENT with a BadRequest naming every required field",
)
async def _(ctx: Context) -> str:
    return await refusal(
        stub(ctx).IssueDeathNotice(pb.IssueDeathNoticeRequest(), timeout=T),
        Code.INVALID_ARGUMENT,
        fields=[
            "request_id",
            "facility_code",
            "deceased_id_number",
            "date_of_death",
            "time_of_death",
        ],
    )


def verify_death(number: str, deceased: str) -> pb.VerifyDeathNoticeRequest:
    return pb.VerifyDeathNoticeRequest(notice_number=number, deceased_id_number=deceased)


@rule(
    "verify_death_notice.happy_path",
    "an issued notice, asked for with the deceased's number, is answered as issued",
)
async def _(ctx: Context) -> str:
    request = death_request(ctx, (await facility(ctx)).code)
    notice = await notify_death(ctx, request)
    reply = await answer(
        stub(ctx).VerifyDeathNotice(
            verify_death(notice.notice_number, request.deceased_id_number), timeout=T
        ),
        "VerifyDeathNotice",
    )
    expect(reply.notice == notice, f"verified {_short(reply.notice)}")
    return f"{notice.notice_number} verified"


@rule(
    "verify_death_notice.not_found",
    "a notice number nobody issued: NOT_FOUND DEATH_NOTICE_NOT_FOUND",
)
async def _(ctx: Context) -> str:
    deceased = id_number(ctx, "001", adult_birthday(), SEX_MALE)
    request = verify_death(f"GBT-NONE-{ctx.fresh.token(12)}", deceased)
    return await refusal(
        stub(ctx).VerifyDeathNotice(request, timeout=T),
        Code.NOT_FOUND,
        reason="DEATH_NOTICE_NOT_FOUND",
    )


@rule(
    "verify_death_notice.deceased_mismatch",
    "a notice asked for with another person's number: FAILED_PRECONDITION DECEASED_ID_MISMATCH",
)
async def _(ctx: Context) -> str:
    notice = await notify_death(ctx, death_request(ctx, (await facility(ctx)).code))
    someone_else = id_number(ctx, "001", adult_birthday(), SEX_MALE)
    return await refusal(
        stub(ctx).VerifyDeathNotice(verify_death(notice.notice_number, someone_else), timeout=T),
        Code.FAILED_PRECONDITION,
        reason="DECEASED_ID_MISMATCH",
    )


@rule(
    "verify_death_notice.field_violations",
    "an empty request: INVALID_ARGUMENT naming notice_number and deceased_id_number",
)
async def _(ctx: Context) -> str:
    return await refusal(
        stub(ctx).VerifyDeathNotice(pb.VerifyDeathNoticeRequest(), timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["notice_number", "deceased_id_number"],
    )


# ---- facilities and seeding ----------------------------------------------------------


@rule("get_facility.happy_path", "GetFacility answers a seeded facility as seeded")
async def _(ctx: Context) -> str:
    place = await facility(ctx)
    reply = await answer(
        stub(ctx).GetFacility(pb.GetFacilityRequest(code=place.code), timeout=T), "GetFacility"
    )
    expect(reply.facility == place, f"seeded {_short(place)}, got {_short(reply.facility)}")
    return f"{place.code} as seeded"


@rule(
    "get_facility.not_found",
    f"a code no facility has ({NO_FACILITY}): NOT_FOUND FACILITY_NOT_FOUND",
)
async def _(ctx: Context) -> str:
    return await refusal(
        stub(ctx).GetFacility(pb.GetFacilityRequest(code=NO_FACILITY), timeout=T),
        Code.NOT_FOUND,
        reason="FACILITY_NOT_FOUND",
    )


@rule(
    "get_facility.field_violations",
    "a code that is not 5 digits: INVALID_ARGUMENT naming code",
)
async def _(ctx: Context) -> str:
    return await refusal(
        stub(ctx).GetFacility(pb.GetFacilityRequest(code="12"), timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["code"],
    )


def seeded_records(ctx: Context, place: pb.MedicalFacility) -> pb.SeedHospitalRecordsRequest:
    day = (ctx.today - dt.timedelta(days=20)).isoformat()
    return pb.SeedHospitalRecordsRequest(
        birth_certificates=[
            pb.BirthCertificate(
                certificate_number=f"GCS-SEED-{ctx.fresh.token(12)}",
                facility_code=place.code,
                mother_id_number=mother_id(ctx),
                mother_full_name="Lê Thị Thu",
                child_sex=SEX_MALE,
                date_of_birth=day,
                time_of_birth="03:05",
                birth_weight_grams=2900,
                issued_on=day,
            )
        ],
        death_notices=[
            pb.DeathNotice(
                notice_number=f"GBT-SEED-{ctx.fresh.token(12)}",
                facility_code=place.code,
                deceased_id_number=id_number(ctx, "001", adult_birthday(1930, 1960), SEX_MALE),
                date_of_death=day,
                time_of_death="11:20",
                issued_on=day,
            )
        ],
    )


@rule(
    "seed_hospital_records.happy_path",
    "a stream of a facility, then a certificate and a notice there: the answer counts each, "
    "and each verifies as seeded",
)
async def _(ctx: Context) -> str:
    place = new_facility(ctx)
    records = seeded_records(ctx, place)
    reply = await answer(
        seed_call(ctx, pb.SeedHospitalRecordsRequest(facilities=[place]), records),
        "SeedHospitalRecords",
    )
    counts = (reply.facilities, reply.birth_certificates, reply.death_notices)
    # The facility may be a replay of an earlier run's (same code, same record).
    expect(counts in ((1, 1, 1), (0, 1, 1)), f"the answer counts {_short(reply)}")
    birth, death = records.birth_certificates[0], records.death_notices[0]
    found = await answer(
        stub(ctx).VerifyBirthCertificate(
            verify_birth(birth.certificate_number, birth.mother_id_number), timeout=T
        ),
        "VerifyBirthCertificate",
    )
    expect(found.certificate == birth, f"seeded {_short(birth)}, got {_short(found)}")
    told = await answer(
        stub(ctx).VerifyDeathNotice(
            verify_death(death.notice_number, death.deceased_id_number), timeout=T
        ),
        "VerifyDeathNotice",
    )
    expect(told.notice == death, f"seeded {_short(death)}, got {_short(told)}")
    return f"counted {counts}; both verify as seeded"


@rule(
    "seed_hospital_records.replay_changes_nothing",
    "the same seed sent again adds nothing: the answer counts 0 of each",
)
async def _(ctx: Context) -> str:
    records = seeded_records(ctx, await facility(ctx))
    await answer(seed_call(ctx, records), "SeedHospitalRecords")
    again = await answer(seed_call(ctx, records), "SeedHospitalRecords again")
    counts = (again.facilities, again.birth_certificates, again.death_notices)
    expect(counts == (0, 0, 0), f"the replay counts {_short(again)}")
    return "replay added 0, 0, 0"


@rule(
    "seed_hospital_records.facility_code_taken",
    "another facility seeded under a code already held: ALREADY_EXISTS FACILITY_CODE_TAKEN",
)
async def _(ctx: Context) -> str:
    place = await facility(ctx)
    other = pb.MedicalFacility(code=place.code, name="Phòng khám khác", province_code="079")
    return await refusal(
        seed_call(ctx, pb.SeedHospitalRecordsRequest(facilities=[other])),
        Code.ALREADY_EXISTS,
        reason="FACILITY_CODE_TAKEN",
    )


@rule(
    "seed_hospital_records.unknown_facility",
    "a certificate naming a facility neither seeded nor stored: INVALID_ARGUMENT naming its "
    "facility_code",
)
async def _(ctx: Context) -> str:
    records = seeded_records(ctx, pb.MedicalFacility(code=NO_FACILITY))
    got = await refused(seed_call(ctx, records), Code.INVALID_ARGUMENT)
    named = [f for f in got.fields if f.endswith("facility_code")]
    expect(bool(named), f"the BadRequest names no facility_code: {got}")
    return str(got)


# ---- the wire ------------------------------------------------------------------------

wire.add_wire_rules(book, SERVICE)
