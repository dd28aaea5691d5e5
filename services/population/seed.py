"""A SeedPopulation stream checked beyond the contract and turned into rows.

Each batch is checked as it arrives (common.seeding.read_batches); the checks
that need the whole stream (household references, one citizen per personal ID
number, household id and birth certificate) run once it has ended. Errors
name `batch[i].citizens[j].field`. A record whose key is already stored is a
replay, left as it was, when it describes the same person or household; one
that describes someone else under that key is refused (stored_conflict).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from common.database import Row
from common.dates import past_day
from common.errors import AlreadyExists, FieldViolation, InvalidArgument
from common.provinces import is_province
from lienthong.population.v1 import population_pb2 as pb
from services.population.rules import id_mismatch

HouseholdRow = tuple[str, str, str, str]


class CitizenRow(NamedTuple):
    """In store.SEEDED_CITIZEN_COLUMNS order; None is NULL."""

    personal_id_number: str
    full_name: str
    sex: int
    date_of_birth: str
    place_of_birth: str
    ethnicity: str
    nationality: str
    mother_id_number: str
    father_id_number: str
    birth_certificate_number: str
    registration_province_code: str
    household_id: str | None
    date_of_death: str | None


@dataclass(frozen=True)
class SeedBatch:
    index: int
    households: list[HouseholdRow]
    citizens: list[CitizenRow]


def _citizen_path(batch: int, position: int) -> str:
    return f"batch[{batch}].citizens[{position}]"


def citizen_row(citizen: pb.Citizen, latest: dt.date) -> CitizenRow:
    """Field names in errors are relative to the citizen; batch_rows adds the
    path. `latest` is the latest day a date of birth or death may name."""
    born = past_day("date_of_birth", citizen.date_of_birth, latest)
    # Law on Identification 2023, Decree 70/2024: the number encodes the
    # registration province, the century and sex, and the birth year.
    problem = id_mismatch(citizen.personal_id_number, born, citizen.sex)
    if problem is not None:
        raise InvalidArgument.field("personal_id_number", problem)
    if citizen.registration_province_code != citizen.personal_id_number[:3]:
        raise InvalidArgument.field(
            "registration_province_code",
            "must be the first three digits of the personal identification number",
        )
    if citizen.date_of_death and past_day("date_of_death", citizen.date_of_death, latest) < born:
        raise InvalidArgument.field("date_of_death", "is before the date of birth")
    return CitizenRow(
        citizen.personal_id_number,
        citizen.full_name,
        citizen.sex,
        citizen.date_of_birth,
        citizen.place_of_birth,
        citizen.ethnicity,
        citizen.nationality,
        citizen.mother_id_number,
        citizen.father_id_number,
        citizen.birth_certificate_number,
        citizen.registration_province_code,
        citizen.household_id or None,
        citizen.date_of_death or None,
    )


def _citizen_rows(batch: pb.SeedPopulationRequest, index: int, latest: dt.date) -> list[CitizenRow]:
    rows = []
    # The path is formatted only for the record at fault: 200,000 f-strings
    # for nothing would be a tenth of the conversion.
    for position, citizen in enumerate(batch.citizens):
        try:
            rows.append(citizen_row(citizen, latest))
        except InvalidArgument as error:
            path = _citizen_path(index, position)
            raise InvalidArgument(
                [FieldViolation(f"{path}.{v.field}", v.description) for v in error.violations]
            ) from None
    return rows


def batch_rows(batch: pb.SeedPopulationRequest, index: int, latest: dt.date) -> SeedBatch:
    households: list[HouseholdRow] = []
    for position, household in enumerate(batch.households):
        if not is_province(household.province_code):
            raise InvalidArgument.field(
                f"batch[{index}].households[{position}].province_code",
                f"{household.province_code} is not a province code",
            )
        households.append(
            (
                household.household_id,
                household.address,
                household.province_code,
                household.head_id_number,
            )
        )
    return SeedBatch(index, households, _citizen_rows(batch, index, latest))


def _household_path(batch: int, position: int) -> str:
    return f"batch[{batch}].households[{position}]"


def _first_claims(
    batches: list[SeedBatch],
) -> None:
    """One household per household id and one citizen per personal ID number
    within the stream: a second record under a key would otherwise be dropped
    without a word."""
    households: dict[str, tuple[int, int]] = {}
    citizens: dict[str, tuple[int, int]] = {}
    for batch in batches:
        for position, household in enumerate(batch.households):
            first = households.setdefault(household[0], (batch.index, position))
            if first != (batch.index, position):
                raise InvalidArgument.field(
                    f"{_household_path(batch.index, position)}.household_id",
                    f"is also the household id of {_household_path(*first)}",
                )
        for position, row in enumerate(batch.citizens):
            first = citizens.setdefault(row.personal_id_number, (batch.index, position))
            if first != (batch.index, position):
                raise InvalidArgument.field(
                    f"{_citizen_path(batch.index, position)}.personal_id_number",
                    f"is also the personal ID number of {_citizen_path(*first)}",
                )


def check_stream(
    batches: list[SeedBatch], existing_households: Callable[[Iterable[str]], set[str]]
) -> None:
    """Every household a citizen names exists (in the stream or already), and
    no personal ID number, household id or birth certificate is claimed by two
    records within the stream."""
    _first_claims(batches)
    seeded = {row[0] for batch in batches for row in batch.households}
    referenced = {
        row.household_id
        for batch in batches
        for row in batch.citizens
        if row.household_id is not None and row.household_id not in seeded
    }
    unknown = referenced - existing_households(referenced) if referenced else set()
    certificates: dict[str, tuple[str, int, int]] = {}
    for batch in batches:
        for position, row in enumerate(batch.citizens):
            if row.household_id in unknown:
                raise InvalidArgument.field(
                    f"{_citizen_path(batch.index, position)}.household_id",
                    f"no household has id {row.household_id}",
                )
            certificate = row.birth_certificate_number
            if not certificate:
                continue
            first = certificates.setdefault(
                certificate, (row.personal_id_number, batch.index, position)
            )
            if first[0] != row.personal_id_number:
                raise InvalidArgument.field(
                    f"{_citizen_path(batch.index, position)}.birth_certificate_number",
                    f"is also the birth certificate of {_citizen_path(first[1], first[2])}",
                )


def stored_conflict(
    batches: list[SeedBatch],
    stored_citizen: Callable[[str], Row | None],
    stored_household: Callable[[str], Row | None],
) -> AlreadyExists | None:
    """The first seeded record whose key the registry already holds for a
    different person or household, as the error to report; None if there is
    none. A replayed record is not a conflict: the same person is the same
    sex and date of birth (what the number encodes and no later change of
    name or residence alters); the same household, the same address and
    province."""
    for batch in batches:
        for position, household in enumerate(batch.households):
            row = stored_household(household[0])
            if row is not None and (row["address"], row["province_code"]) != household[1:3]:
                return AlreadyExists(
                    f"{_household_path(batch.index, position)}.household_id: "
                    "the registry already has another household under this id",
                    reason="HOUSEHOLD_ID_TAKEN",
                )
        for position, citizen in enumerate(batch.citizens):
            found = stored_citizen(citizen.personal_id_number)
            if found is not None and (found["sex"], found["date_of_birth"]) != (
                citizen.sex,
                citizen.date_of_birth,
            ):
                return AlreadyExists(
                    f"{_citizen_path(batch.index, position)}.personal_id_number: "
                    "the registry already has another person under this number",
                    reason="PERSONAL_ID_TAKEN",
                )
    return None


def certificate_conflict(
    batches: list[SeedBatch], owner_of: Callable[[str], str | None]
) -> AlreadyExists | None:
    """The first seeded citizen whose birth certificate is already registered
    to someone else, as the error to report; None if there is none."""
    for batch in batches:
        for position, row in enumerate(batch.citizens):
            certificate = row.birth_certificate_number
            if not certificate:
                continue
            owner = owner_of(certificate)
            if owner is not None and owner != row.personal_id_number:
                return AlreadyExists(
                    f"{_citizen_path(batch.index, position)}.birth_certificate_number: "
                    f"birth certificate {certificate} is already registered to another citizen",
                    reason="BIRTH_ALREADY_REGISTERED",
                )
    return None
