"""A population and its plan as the three registries' seed streams.

Each registry's seed RPC takes a client stream of batches and writes all of it
or none (common/seeding.py). The population registry checks that every
household a citizen names exists only once the stream has ended, but the
households still come first; the health registry gets facilities before the
certificates and notices that name them. A batch list is re-iterable and
builds its messages as it is read, so a refused stream can be sent again and
200,000 citizens are not held twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from cli.seeding import SeedCounts
from lienthong.health.v1 import health_pb2 as hl
from lienthong.insurance.v1 import insurance_pb2 as ins
from lienthong.population.v1 import population_pb2 as pop
from scenarios.declarations import DeclarationPlan
from scenarios.population import SyntheticPopulation

DEFAULT_BATCH_SIZE = 5000
M = TypeVar("M")
R = TypeVar("R")


class Batches(Generic[M]):
    """Seed messages, made afresh on each iteration."""

    def __init__(self, make: Callable[[], Iterator[M]], count: int) -> None:
        self._make = make
        self._count = count

    def __iter__(self) -> Iterator[M]:
        return self._make()

    def __len__(self) -> int:
        return self._count


@dataclass(frozen=True)
class SeedRequests:
    population: Batches[pop.SeedPopulationRequest]
    health: Batches[hl.SeedHospitalRecordsRequest]
    insurance: Batches[ins.SeedParticipantsRequest]
    # What each registry should answer it added, on a fresh database.
    expected: SeedCounts


def _chunks(records: Sequence[R], size: int) -> Iterator[Sequence[R]]:
    for start in range(0, len(records), size):
        yield records[start : start + size]


def _count(*lengths: int, size: int) -> int:
    return sum(-(-length // size) for length in lengths)


def _replaced(records: Sequence[R], replacements: dict[str, R], key: Callable[[R], str]) -> list[R]:
    if not replacements:
        return list(records)
    return [replacements.get(key(record), record) for record in records]


def seed_requests(
    population: SyntheticPopulation,
    plan: DeclarationPlan | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> SeedRequests:
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    size = batch_size
    certificates = plan.birth_certificates if plan else []
    notices = plan.death_notices if plan else []

    def by_id(record: pop.Citizen | ins.Participant) -> str:
        return record.personal_id_number

    citizens = _replaced(
        population.citizens,
        {c.personal_id_number: c for c in plan.already_dead} if plan else {},
        by_id,
    )
    participants = _replaced(
        population.participants,
        {p.personal_id_number: p for p in plan.already_dead_participants} if plan else {},
        by_id,
    )

    def population_batches() -> Iterator[pop.SeedPopulationRequest]:
        for households in _chunks(population.households, size):
            yield pop.SeedPopulationRequest(households=households)
        for chunk in _chunks(citizens, size):
            yield pop.SeedPopulationRequest(citizens=chunk)

    def health_batches() -> Iterator[hl.SeedHospitalRecordsRequest]:
        for facilities in _chunks(population.facilities, size):
            yield hl.SeedHospitalRecordsRequest(facilities=facilities)
        for births in _chunks(certificates, size):
            yield hl.SeedHospitalRecordsRequest(birth_certificates=births)
        for deaths in _chunks(notices, size):
            yield hl.SeedHospitalRecordsRequest(death_notices=deaths)

    def insurance_batches() -> Iterator[ins.SeedParticipantsRequest]:
        for chunk in _chunks(participants, size):
            yield ins.SeedParticipantsRequest(participants=chunk)

    return SeedRequests(
        population=Batches(
            population_batches, _count(len(population.households), len(citizens), size=size)
        ),
        health=Batches(
            health_batches,
            _count(len(population.facilities), len(certificates), len(notices), size=size),
        ),
        insurance=Batches(insurance_batches, _count(len(participants), size=size)),
        expected=SeedCounts(
            households=len(population.households),
            citizens=len(citizens),
            facilities=len(population.facilities),
            birth_certificates=len(certificates),
            death_notices=len(notices),
            participants=len(participants),
        ),
    )
