"""What the population registry decides: births and the personal ID number,
permanent residence, deaths.

Requests arrive already checked against the contract (common.rpc); the rules
here are the ones a contract cannot express: a real date that is not in the
future, a known province, parents on the register, one registration per birth
certificate, one permanent residence per person, one death per person.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable

from common.database import IntegrityError, Row
from common.dates import parse_date, past_day
from common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from common.provinces import is_province
from common.quoting import quote
from lienthong.common.v1 import common_pb2
from lienthong.population.v1 import population_pb2 as pb
from services.population import rules
from services.population.records import to_citizen, to_household
from services.population.seed import (
    SeedBatch,
    certificate_conflict,
    check_stream,
    stored_conflict,
)
from services.population.store import PopulationStore


def _day(field: str, value: str, today: dt.date, latest: dt.date) -> dt.date:
    """A real calendar day that records the past: `today` when empty, never
    after `latest` (today, plus the configured clock tolerance)."""
    return past_day(field, value, latest) if value else today


class PopulationRegistry:
    def __init__(
        self,
        store: PopulationStore,
        today: Callable[[], dt.date] = dt.date.today,
        death_declaration_days: int = rules.DEFAULT_DEATH_DECLARATION_DAYS,
        latest: Callable[[], dt.date] | None = None,
    ) -> None:
        self.store = store
        self.today = today
        # The latest day a date recording the past may name (clock tolerance).
        self.latest = latest or today
        self.death_declaration_days = death_declaration_days

    def _require_citizen(self, personal_id: str) -> Row:
        row = self.store.citizen(personal_id)
        if row is None:
            raise NotFound(
                f"no citizen has personal identification number {quote(personal_id)}",
                reason="CITIZEN_NOT_FOUND",
            )
        return row

    def _require_household(self, household_id: str) -> Row:
        row = self.store.household(household_id)
        if row is None:
            raise NotFound(
                f"no household has id {quote(household_id)}", reason="HOUSEHOLD_NOT_FOUND"
            )
        return row

    def _check_parents(self, request: pb.RegisterBirthRequest) -> None:
        mother = self.store.citizen(request.mother_id_number)
        if mother is None:
            raise NotFound(
                "the mother's personal identification number is not on the register",
                reason="MOTHER_NOT_FOUND",
            )
        if mother["sex"] != common_pb2.SEX_FEMALE:
            raise FailedPrecondition(
                "the person named as mother is not registered as female",
                reason="MOTHER_NOT_FEMALE",
            )
        if request.father_id_number and self.store.citizen(request.father_id_number) is None:
            raise NotFound(
                "the father's personal identification number is not on the register",
                reason="FATHER_NOT_FOUND",
            )

    def register_birth(self, request: pb.RegisterBirthRequest) -> pb.RegisterBirthResponse:
        today, latest = self.today(), self.latest()
        registered_on = _day("registered_on", request.registered_on, today, latest)
        child = request.child
        born = past_day("child.date_of_birth", child.date_of_birth, latest)
        if born > registered_on:
            raise InvalidArgument.field(
                "child.date_of_birth", f"is after the registration day {registered_on}"
            )
        province = request.registration_province_code
        if not is_province(province):
            raise InvalidArgument.field(
                "registration_province_code", f"{province} is not a province code"
            )
        try:
            prefix = rules.id_prefix(province, born, child.sex)
        except ValueError as error:
            raise InvalidArgument.field("child.date_of_birth", str(error)) from None
        self._check_parents(request)
        if self.store.citizen_with_birth_certificate(request.birth_certificate_number):
            raise AlreadyExists(
                "this birth certificate is already registered", reason="BIRTH_ALREADY_REGISTERED"
            )
        # Law on Identification 2023, Decree 70/2024: the number is assigned
        # when the birth is registered.
        serial = self.store.allocate_serial(prefix)
        if serial is None:
            raise FailedPrecondition(
                f"every personal identification number with prefix {prefix} is taken",
                reason="ID_SERIALS_EXHAUSTED",
            )
        personal_id = rules.personal_id_number(prefix, serial)
        self.store.insert_citizen(
            (
                personal_id,
                child.full_name,
                child.sex,
                child.date_of_birth,
                child.place_of_birth,
                child.ethnicity,
                child.nationality,
                request.mother_id_number,
                request.father_id_number,
                request.birth_certificate_number,
                province,
                None,
                None,
                registered_on.isoformat(),
            )
        )
        row = self.store.citizen(personal_id)
        assert row is not None
        return pb.RegisterBirthResponse(
            citizen=to_citizen(row), registered_on=registered_on.isoformat()
        )

    def register_permanent_residence(
        self, request: pb.RegisterPermanentResidenceRequest
    ) -> pb.RegisterPermanentResidenceResponse:
        registered_on = _day("registered_on", request.registered_on, self.today(), self.latest())
        citizen = self._require_citizen(request.personal_id_number)
        if citizen["date_of_death"]:
            raise FailedPrecondition(
                f"the citizen is registered dead (died on {citizen['date_of_death']})",
                reason="CITIZEN_DECEASED",
            )
        household = self._require_household(request.household_id)
        # Law on Residence 2020: one permanent residence per person, so a move
        # needs the old one removed first.
        current = citizen["household_id"]
        if current == request.household_id:
            raise AlreadyExists(
                "the citizen is already a permanent resident of this household",
                reason="ALREADY_RESIDENT",
            )
        if current is not None:
            raise FailedPrecondition(
                f"the citizen has a permanent residence in household {current}; "
                "it must be removed first",
                reason="RESIDENT_ELSEWHERE",
            )
        if registered_on < dt.date.fromisoformat(citizen["date_of_birth"]):
            raise InvalidArgument.field("registered_on", "is before the citizen's date of birth")
        self.store.add_residence(
            request.personal_id_number, request.household_id, registered_on.isoformat()
        )
        return pb.RegisterPermanentResidenceResponse(
            personal_id_number=request.personal_id_number,
            household=to_household(household),
            registered_on=registered_on.isoformat(),
        )

    def remove_permanent_residence(
        self, request: pb.RemovePermanentResidenceRequest
    ) -> pb.RemovePermanentResidenceResponse:
        removed_on = _day("removed_on", request.removed_on, self.today(), self.latest())
        citizen = self._require_citizen(request.personal_id_number)
        residence = self.store.current_residence(request.personal_id_number)
        if residence is None:
            raise FailedPrecondition(
                "the citizen has no permanent residence registered",
                reason="NO_PERMANENT_RESIDENCE",
            )
        # Law on Residence 2020 art. 24(1)(a): a death removes the permanent
        # residence, but only a death the civil-status register records.
        if request.reason == pb.REMOVAL_REASON_DECEASED and not citizen["date_of_death"]:
            raise FailedPrecondition(
                "the citizen's death is not registered; register the death first",
                reason="NOT_REGISTERED_DEAD",
            )
        registered_on = residence["registered_on"]
        if registered_on is not None and removed_on < dt.date.fromisoformat(registered_on):
            raise InvalidArgument.field(
                "removed_on", f"is before the residence was registered on {registered_on}"
            )
        self.store.end_residence(
            residence["residence_id"],
            request.personal_id_number,
            removed_on.isoformat(),
            request.reason,
        )
        return pb.RemovePermanentResidenceResponse(
            personal_id_number=request.personal_id_number,
            household_id=residence["household_id"],
            removed_on=removed_on.isoformat(),
        )

    def register_death(self, request: pb.RegisterDeathRequest) -> pb.RegisterDeathResponse:
        declared_on = _day("declared_on", request.declared_on, self.today(), self.latest())
        died = parse_date("date_of_death", request.date_of_death)
        if died > declared_on:
            raise InvalidArgument.field(
                "date_of_death", f"is after the day of declaration {declared_on}"
            )
        citizen = self._require_citizen(request.personal_id_number)
        if citizen["date_of_death"]:
            raise FailedPrecondition(
                f"the person is already registered dead, died on {citizen['date_of_death']}",
                reason="ALREADY_DEAD",
            )
        if died < dt.date.fromisoformat(citizen["date_of_birth"]):
            raise FailedPrecondition(
                f"the date of death is before the date of birth {citizen['date_of_birth']}",
                reason="DEATH_BEFORE_BIRTH",
            )
        # Law on Civil Status 2014 art. 33(1): late declarations are accepted, flagged.
        declaration = rules.judge_death_declaration(died, declared_on, self.death_declaration_days)
        self.store.record_death(
            (
                request.personal_id_number,
                died.isoformat(),
                request.time_of_death,
                request.place_of_death,
                request.death_notice_number,
                declared_on.isoformat(),
                declaration.days_after_death,
                int(declaration.declared_late),
            )
        )
        return pb.RegisterDeathResponse(
            registration=pb.DeathRegistration(
                personal_id_number=request.personal_id_number,
                date_of_death=died.isoformat(),
                registered_on=declared_on.isoformat(),
                declared_late=declaration.declared_late,
                days_after_death=declaration.days_after_death,
            )
        )

    def get_citizen(self, request: pb.GetCitizenRequest) -> pb.GetCitizenResponse:
        return pb.GetCitizenResponse(
            citizen=to_citizen(self._require_citizen(request.personal_id_number))
        )

    def get_household(self, request: pb.GetHouseholdRequest) -> pb.GetHouseholdResponse:
        household = self._require_household(request.household_id)
        return pb.GetHouseholdResponse(
            household=to_household(household),
            member_id_numbers=self.store.household_members(request.household_id),
        )

    def seed(self, batches: list[SeedBatch]) -> pb.SeedPopulationResponse:
        """Write the whole stream in this unit of work's transaction, or
        nothing (run it with attempts=1: a refused seed is refused again)."""
        check_stream(batches, self.store.existing_households)
        household_rows = list(itertools.chain.from_iterable(b.households for b in batches))
        citizen_rows = list(itertools.chain.from_iterable(b.citizens for b in batches))
        try:
            households, citizens = self.store.seed(household_rows, citizen_rows)
        except IntegrityError:
            # Undone (store.seed's savepoint); only now look for the culprit,
            # so a clean seed pays nothing.
            conflict = certificate_conflict(batches, self.store.citizen_with_birth_certificate)
            if conflict is None:
                raise
            raise conflict from None
        # Fewer rows added than sent: some keys were already stored. Only
        # then look whether they are replays or someone else's, so a clean
        # seed pays nothing; raising rolls everything back.
        if (households, citizens) != (len(household_rows), len(citizen_rows)):
            conflict = stored_conflict(
                batches,
                self.store.citizen_lookup(r[0] for r in citizen_rows),
                self.store.household_lookup(r[0] for r in household_rows),
            )
            if conflict is not None:
                raise conflict
        return pb.SeedPopulationResponse(households=households, citizens=citizens)
