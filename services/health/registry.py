"""What the hospital registry decides: issuing and verifying certificates.

Requests arrive already checked against the contract (common.rpc); the rules
here are the ones a contract cannot express: a real date, a known facility,
one death notice per person, a certificate that names this mother.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from common.database import Row
from common.dates import past_day
from common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from common.identifiers import parse_personal_id
from common.provinces import is_province
from common.quoting import quote
from lienthong.health.v1 import health_pb2 as pb
from services.health.store import HospitalStore


def _check_id(field: str, value: str) -> None:
    try:
        parse_personal_id(value)
    except ValueError as error:
        raise InvalidArgument.field(field, str(error)) from None


SeedRows = tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[tuple[object, ...]]]


def to_birth_certificate(row: Row) -> pb.BirthCertificate:
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


def to_death_notice(row: Row) -> pb.DeathNotice:
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


def seed_rows(batch: pb.SeedHospitalRecordsRequest, index: int, latest: dt.date) -> SeedRows:
    """Check one batch beyond the contract and turn it into rows: dates
    are real days, not after `latest`; a facility's province is in the table."""
    for i, facility in enumerate(batch.facilities):
        if not is_province(facility.province_code):
            raise InvalidArgument.field(
                f"batch[{index}].facilities[{i}].province_code",
                f"{facility.province_code} is not a province code",
            )
    for i, birth in enumerate(batch.birth_certificates):
        path = f"batch[{index}].birth_certificates[{i}]"
        born = past_day(f"{path}.date_of_birth", birth.date_of_birth, latest)
        if past_day(f"{path}.issued_on", birth.issued_on, latest) < born:
            raise InvalidArgument.field(f"{path}.issued_on", "is before the date of birth")
    for i, death in enumerate(batch.death_notices):
        path = f"batch[{index}].death_notices[{i}]"
        died = past_day(f"{path}.date_of_death", death.date_of_death, latest)
        if past_day(f"{path}.issued_on", death.issued_on, latest) < died:
            raise InvalidArgument.field(f"{path}.issued_on", "is before the date of death")
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


class HospitalRegistry:
    def __init__(
        self,
        store: HospitalStore,
        today: Callable[[], dt.date] = dt.date.today,
        latest: Callable[[], dt.date] | None = None,
    ) -> None:
        self.store = store
        self.today = today
        # The latest day a date recording the past may name (clock tolerance).
        self.latest = latest or today

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
        past_day("date_of_birth", request.date_of_birth, self.latest())
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
        past_day("date_of_death", request.date_of_death, self.latest())
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

    def seed(self, batches: list[SeedRows]) -> pb.SeedHospitalRecordsResponse:
        """Load a stream whose batches passed seed_rows, in the unit of work:
        the checks that need the whole stream or the store first. Raising
        rolls the whole stream back."""
        self.check_stream(batches)
        added = [
            self.store.seed_facilities(row for rows in batches for row in rows[0]),
            self.store.seed_birth_certificates(row for rows in batches for row in rows[1]),
            self.store.seed_death_notices(row for rows in batches for row in rows[2]),
        ]
        sent = [sum(len(rows[kind]) for rows in batches) for kind in range(3)]
        # Fewer rows added than sent: some keys were already stored. Only
        # then look whether they are replays or different records, so a
        # clean seed pays nothing.
        if added != sent:
            conflict = self.stored_conflict(batches)
            if conflict is not None:
                raise conflict
        return pb.SeedHospitalRecordsResponse(
            facilities=added[0], birth_certificates=added[1], death_notices=added[2]
        )

    def check_stream(self, batches: list[SeedRows]) -> None:
        """Checks that need the whole stream: one record per key (facility
        code, certificate number, notice number, one death notice per person),
        and every certificate or notice names a facility, in the stream or
        already stored. A second record under a key would otherwise be
        dropped without a word."""
        keys = (
            ("facilities", 0, "code", "facility code"),
            ("birth_certificates", 0, "certificate_number", "certificate number"),
            ("death_notices", 0, "notice_number", "notice number"),
            ("death_notices", 2, "deceased_id_number", "deceased (one death notice a person)"),
        )
        for part, column, field, what in keys:
            kind = _PARTS.index(part)
            first: dict[object, tuple[int, int]] = {}
            for index, rows in enumerate(batches):
                for i, row in enumerate(rows[kind]):
                    claimed = first.setdefault(row[column], (index, i))
                    if claimed != (index, i):
                        raise InvalidArgument.field(
                            f"batch[{index}].{part}[{i}].{field}",
                            f"is also the {what} of batch[{claimed[0]}].{part}[{claimed[1]}]",
                        )
        seeded = {row[0] for rows in batches for row in rows[0]}
        known: dict[object, bool] = {}
        for index, rows in enumerate(batches):
            for kind in (1, 2):
                for i, row in enumerate(rows[kind]):
                    code = row[1]
                    if code not in seeded and code not in known:
                        known[code] = self.store.facility(str(code)) is not None
                    if code not in seeded and not known[code]:
                        raise InvalidArgument.field(
                            f"batch[{index}].{_PARTS[kind]}[{i}].facility_code",
                            f"no medical facility has code {code}",
                        )

    def stored_conflict(self, batches: list[SeedRows]) -> AlreadyExists | None:
        """The first seeded record whose key the registry already holds for a
        different record; None if there is none. A replayed record is not a
        conflict."""
        facilities_stored = self.store.facilities([str(f[0]) for b in batches for f in b[0]])
        births_stored = self.store.birth_certificates([str(r[0]) for b in batches for r in b[1]])
        deaths_stored = self.store.death_notices([str(r[0]) for b in batches for r in b[2]])
        deaths_of = self.store.death_notices_for([str(r[2]) for b in batches for r in b[2]])
        for index, (facilities, births, deaths) in enumerate(batches):
            for i, facility in enumerate(facilities):
                row = facilities_stored.get(str(facility[0]))
                if row is not None and (row["name"], row["province_code"]) != facility[1:3]:
                    return AlreadyExists(
                        f"batch[{index}].facilities[{i}].code: "
                        "the registry already has another facility under this code",
                        reason="FACILITY_CODE_TAKEN",
                    )
            for i, birth in enumerate(births):
                row = births_stored.get(str(birth[0]))
                if row is not None and tuple(row) != birth:
                    return AlreadyExists(
                        f"batch[{index}].birth_certificates[{i}].certificate_number: "
                        "the registry already has another birth certificate under this number",
                        reason="CERTIFICATE_NUMBER_TAKEN",
                    )
            for i, death in enumerate(deaths):
                row = deaths_stored.get(str(death[0]))
                if row is not None and tuple(row) != death:
                    return AlreadyExists(
                        f"batch[{index}].death_notices[{i}].notice_number: "
                        "the registry already has another death notice under this number",
                        reason="NOTICE_NUMBER_TAKEN",
                    )
                row = deaths_of.get(str(death[2]))
                if row is not None and row["notice_number"] != death[0]:
                    return AlreadyExists(
                        f"batch[{index}].death_notices[{i}].deceased_id_number: "
                        f"a death notice for this person was already issued: "
                        f"{row['notice_number']}",
                        reason="DEATH_NOTICE_EXISTS",
                    )
        return None


_PARTS = ("facilities", "birth_certificates", "death_notices")
