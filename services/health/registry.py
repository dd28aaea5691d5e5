"""What the hospital registry decides: issuing and verifying certificates.

Requests arrive already checked against the contract (common.rpc); the rules
here are the ones a contract cannot express: a real date, a known facility,
one death notice per person, a certificate that names this mother.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable

from common.dates import parse_date
from common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from common.identifiers import parse_personal_id
from common.quoting import quote
from lienthong.health.v1 import health_pb2 as pb
from services.health.store import HospitalStore


def _check_id(field: str, value: str) -> None:
    try:
        parse_personal_id(value)
    except ValueError as error:
        raise InvalidArgument.field(field, str(error)) from None


def _not_after(field: str, value: str, today: dt.date) -> None:
    if parse_date(field, value) > today:
        raise InvalidArgument.field(field, f"{value} is in the future")


def to_birth_certificate(row: sqlite3.Row) -> pb.BirthCertificate:
    return pb.BirthCertificate(
        certificate_number=row["certificate_number"],
        facility_code=row["facility_code"],
        mother_id_number=row["mother_id_number"],
        mother_full_name=row["mother_full_name"],
        child_sex=row["child_sex"],
        date_of_birth=row["date_of_birth"],
        time_of_birth=row["time_of_birth"],
        birth_weight_grams=row["birth_weight_grams"],
        issued_on=row["issued_on"],
    )


def to_death_notice(row: sqlite3.Row) -> pb.DeathNotice:
    return pb.DeathNotice(
        notice_number=row["notice_number"],
        facility_code=row["facility_code"],
        deceased_id_number=row["deceased_id_number"],
        date_of_death=row["date_of_death"],
        time_of_death=row["time_of_death"],
        cause=row["cause"],
        work_accident_or_occupational_disease=bool(row["work_accident"]),
        issued_on=row["issued_on"],
    )


class HospitalRegistry:
    def __init__(self, store: HospitalStore, today: Callable[[], dt.date] = dt.date.today) -> None:
        self.store = store
        self.today = today

    def _require_facility(self, code: str) -> None:
        if self.store.facility(code) is None:
            raise NotFound(
                f"no medical facility has code {quote(code)}", reason="FACILITY_NOT_FOUND"
            )

    def issue_birth_certificate(
        self, request: pb.IssueBirthCertificateRequest
    ) -> pb.IssueBirthCertificateResponse:
        today = self.today()
        _check_id("mother_id_number", request.mother_id_number)
        _not_after("date_of_birth", request.date_of_birth, today)
        self._require_facility(request.facility_code)
        serial = self.store.next_serial(f"birth:{request.facility_code}")
        number = f"GCS-{request.facility_code}-{serial:07d}"
        self.store.insert_birth_certificate(
            (
                number,
                request.facility_code,
                request.mother_id_number,
                request.mother_full_name,
                request.child_sex,
                request.date_of_birth,
                request.time_of_birth,
                request.birth_weight_grams,
                today.isoformat(),
            )
        )
        row = self.store.birth_certificate(number)
        assert row is not None
        return pb.IssueBirthCertificateResponse(certificate=to_birth_certificate(row))

    def verify_birth_certificate(
        self, request: pb.VerifyBirthCertificateRequest
    ) -> pb.VerifyBirthCertificateResponse:
        row = self.store.birth_certificate(request.certificate_number)
        if row is None:
            raise NotFound(
                f"no birth certificate has number {quote(request.certificate_number)}",
                reason="BIRTH_CERTIFICATE_NOT_FOUND",
            )
        if row["mother_id_number"] != request.mother_id_number:
            raise FailedPrecondition(
                "the mother's ID number does not match the birth certificate",
                reason="MOTHER_ID_MISMATCH",
            )
        return pb.VerifyBirthCertificateResponse(certificate=to_birth_certificate(row))

    def issue_death_notice(
        self, request: pb.IssueDeathNoticeRequest
    ) -> pb.IssueDeathNoticeResponse:
        today = self.today()
        _check_id("deceased_id_number", request.deceased_id_number)
        _not_after("date_of_death", request.date_of_death, today)
        self._require_facility(request.facility_code)
        existing = self.store.death_notice_for(request.deceased_id_number)
        if existing is not None:
            raise AlreadyExists(
                f"a death notice for this person was already issued: {existing['notice_number']}",
                reason="DEATH_NOTICE_EXISTS",
            )
        serial = self.store.next_serial(f"death:{request.facility_code}")
        number = f"GBT-{request.facility_code}-{serial:07d}"
        self.store.insert_death_notice(
            (
                number,
                request.facility_code,
                request.deceased_id_number,
                request.date_of_death,
                request.time_of_death,
                request.cause,
                int(request.work_accident_or_occupational_disease),
                today.isoformat(),
            )
        )
        row = self.store.death_notice(number)
        assert row is not None
        return pb.IssueDeathNoticeResponse(notice=to_death_notice(row))

    def verify_death_notice(
        self, request: pb.VerifyDeathNoticeRequest
    ) -> pb.VerifyDeathNoticeResponse:
        row = self.store.death_notice(request.notice_number)
        if row is None:
            raise NotFound(
                f"no death notice has number {quote(request.notice_number)}",
                reason="DEATH_NOTICE_NOT_FOUND",
            )
        if row["deceased_id_number"] != request.deceased_id_number:
            raise FailedPrecondition(
                "the deceased's ID number does not match the death notice",
                reason="DECEASED_ID_MISMATCH",
            )
        return pb.VerifyDeathNoticeResponse(notice=to_death_notice(row))

    def get_facility(self, request: pb.GetFacilityRequest) -> pb.GetFacilityResponse:
        row = self.store.facility(request.code)
        if row is None:
            raise NotFound(
                f"no medical facility has code {quote(request.code)}", reason="FACILITY_NOT_FOUND"
            )
        return pb.GetFacilityResponse(
            facility=pb.MedicalFacility(
                code=row["code"], name=row["name"], province_code=row["province_code"]
            )
        )

    def seed_rows(
        self, batch: pb.SeedHospitalRecordsRequest, index: int
    ) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[tuple[object, ...]]]:
        """Check one batch beyond the contract and turn it into rows."""
        for i, birth in enumerate(batch.birth_certificates):
            parse_date(f"batch[{index}].birth_certificates[{i}].date_of_birth", birth.date_of_birth)
        for i, death in enumerate(batch.death_notices):
            parse_date(f"batch[{index}].death_notices[{i}].date_of_death", death.date_of_death)
        return (
            [(f.code, f.name, f.province_code) for f in batch.facilities],
            [
                (
                    b.certificate_number,
                    b.facility_code,
                    b.mother_id_number,
                    b.mother_full_name,
                    b.child_sex,
                    b.date_of_birth,
                    b.time_of_birth,
                    b.birth_weight_grams,
                    b.issued_on,
                )
                for b in batch.birth_certificates
            ],
            [
                (
                    d.notice_number,
                    d.facility_code,
                    d.deceased_id_number,
                    d.date_of_death,
                    d.time_of_death,
                    d.cause,
                    int(d.work_accident_or_occupational_disease),
                    d.issued_on,
                )
                for d in batch.death_notices
            ],
        )
