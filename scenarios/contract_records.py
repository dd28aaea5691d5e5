"""The registries' records read through their contracts' read RPCs.

For an agency plugged in from elsewhere (`--agency`), whose files the audit
cannot open: population through `GetCitizen`, social insurance through
`GetParticipant`. A read shows whether a record exists, not how many were
made, and some effects have no read at all; `NOT_CHECKED` says, per agency,
what the audit cannot check this way, and the report repeats it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TypeVar

import grpc

from common import channels
from lienthong.insurance.v1 import insurance_pb2 as ins
from lienthong.insurance.v1 import insurance_pb2_grpc as ins_grpc
from lienthong.population.v1 import population_pb2 as pop
from lienthong.population.v1 import population_pb2_grpc as pop_grpc

__all__ = [
    "NOT_CHECKED",
    "InsuranceThroughContract",
    "PopulationThroughContract",
    "read_citizens",
    "read_participants",
]

NOT_CHECKED = {
    "population": "population (through its contract): effects made twice (GetCitizen "
    "shows whether a record exists, not how many were made), and registrations of "
    "births that should have been refused (there is no lookup by birth certificate)",
    "insurance": "insurance (through its contract): cards made twice, and funeral "
    "allowances: whether one was paid, twice, or at the rule's amount (there is no "
    "read of allowances)",
}

# Reads in flight at once: enough to hide the round trips, few enough not to
# crowd a registry that another team may be running on a small machine.
CONCURRENT_READS = 32
READ_TIMEOUT_SECONDS = 10.0

Record = TypeVar("Record")


class PopulationThroughContract:
    """PopulationRecords (scenarios/audit.py) from citizens read by ID number.

    `children`: birth certificate → the child's ID number, as the settled
    dossiers reported it; the registry then has to hold that citizen, born
    with that certificate."""

    def __init__(self, citizens: Mapping[str, pop.Citizen], children: Mapping[str, str]) -> None:
        self._citizens = citizens
        self._children = children

    def children(self, certificate: str) -> list[str]:
        person = self._children.get(certificate)
        citizen = self._citizens.get(person) if person else None
        if citizen is None or citizen.birth_certificate_number != certificate:
            return []
        return [citizen.personal_id_number]

    def residences(self, person: str) -> int:
        citizen = self._citizens.get(person)
        return 1 if citizen is not None and citizen.household_id else 0

    def current_residences(self, person: str) -> int:
        return self.residences(person)

    def death_registrations(self, person: str) -> int:
        citizen = self._citizens.get(person)
        return 1 if citizen is not None and citizen.date_of_death else 0


class InsuranceThroughContract:
    """InsuranceRecords (scenarios/audit.py) from participants read by ID number."""

    def __init__(self, participants: Mapping[str, ins.Participant]) -> None:
        self._participants = participants

    def cards(self, person: str) -> int:
        participant = self._participants.get(person)
        return 1 if participant is not None and participant.card.card_code else 0

    def insured(self, person: str) -> tuple[bool, bool]:
        participant = self._participants.get(person)
        if participant is None:
            return False, False
        return True, bool(participant.date_of_death)

    def allowances(self, person: str) -> list[int] | None:
        return None  # the contract has no read of allowances


async def _read_each(
    people: Iterable[str], read: Callable[[str], Awaitable[Record | None]]
) -> dict[str, Record]:
    gate = asyncio.Semaphore(CONCURRENT_READS)
    found: dict[str, Record] = {}

    async def one(person: str) -> None:
        async with gate:
            record = await read(person)
        if record is not None:
            found[person] = record

    await asyncio.gather(*(one(person) for person in sorted(set(people))))
    return found


async def read_citizens(address: str, people: Iterable[str]) -> dict[str, pop.Citizen]:
    """Each person's citizen record (absent: NOT_FOUND); other failures raise."""
    async with channels.channel(address) as channel:
        stub = pop_grpc.PopulationRegistryServiceStub(channel)

        async def read(person: str) -> pop.Citizen | None:
            try:
                answer = await stub.GetCitizen(
                    pop.GetCitizenRequest(personal_id_number=person),
                    timeout=READ_TIMEOUT_SECONDS,
                )
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                raise
            return answer.citizen

        return await _read_each(people, read)


async def read_participants(address: str, people: Iterable[str]) -> dict[str, ins.Participant]:
    """Each person's social insurance record (absent: NOT_FOUND)."""
    async with channels.channel(address) as channel:
        stub = ins_grpc.InsuranceRegistryServiceStub(channel)

        async def read(person: str) -> ins.Participant | None:
            try:
                answer = await stub.GetParticipant(
                    ins.GetParticipantRequest(personal_id_number=person),
                    timeout=READ_TIMEOUT_SECONDS,
                )
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                raise
            return answer.participant

        return await _read_each(people, read)
