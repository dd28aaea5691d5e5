"""Load a demo population into running registries through their seed RPCs.

Each registry's seed RPC takes a client stream of batches and writes all of it
or none; a record already present is left as it was, so seeding twice is safe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

import grpc

from cli.demo_data import DemoPopulation
from common import channels
from common.agencies import AGENCY_NAMES
from lienthong.health.v1 import health_pb2 as hl
from lienthong.health.v1 import health_pb2_grpc as hl_grpc
from lienthong.insurance.v1 import insurance_pb2 as ins
from lienthong.insurance.v1 import insurance_pb2_grpc as ins_grpc
from lienthong.population.v1 import population_pb2 as pop
from lienthong.population.v1 import population_pb2_grpc as pop_grpc

SEED_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class SeedCounts:
    """Records each registry added (0 for those it already had)."""

    households: int
    citizens: int
    facilities: int
    birth_certificates: int
    death_notices: int
    participants: int


BatchT = TypeVar("BatchT")


def _one(batch: BatchT) -> Iterator[BatchT]:
    # A demo population is small: one batch per registry.
    yield batch


def _population(channel: grpc.Channel, people: DemoPopulation) -> dict[str, int]:
    added = pop_grpc.PopulationRegistryServiceStub(channel).SeedPopulation(
        _one(pop.SeedPopulationRequest(households=people.households, citizens=people.citizens)),
        timeout=SEED_TIMEOUT_SECONDS,
        wait_for_ready=True,
    )
    return {"households": added.households, "citizens": added.citizens}


def _health(channel: grpc.Channel, people: DemoPopulation) -> dict[str, int]:
    added = hl_grpc.HealthRegistryServiceStub(channel).SeedHospitalRecords(
        _one(
            hl.SeedHospitalRecordsRequest(
                facilities=people.facilities,
                birth_certificates=people.birth_certificates,
                death_notices=people.death_notices,
            )
        ),
        timeout=SEED_TIMEOUT_SECONDS,
        wait_for_ready=True,
    )
    return {
        "facilities": added.facilities,
        "birth_certificates": added.birth_certificates,
        "death_notices": added.death_notices,
    }


def _insurance(channel: grpc.Channel, people: DemoPopulation) -> dict[str, int]:
    added = ins_grpc.InsuranceRegistryServiceStub(channel).SeedParticipants(
        _one(ins.SeedParticipantsRequest(participants=people.participants)),
        timeout=SEED_TIMEOUT_SECONDS,
        wait_for_ready=True,
    )
    return {"participants": added.participants}


# Each agency's part of a demo population, through its contract's seed RPC
# (the agencies themselves: common/agencies.py).
SEEDERS: dict[str, Callable[[grpc.Channel, DemoPopulation], dict[str, int]]] = {
    "population": _population,
    "health": _health,
    "insurance": _insurance,
}


def seed(
    addresses: Mapping[str, str],
    people: DemoPopulation,
    *,
    tls: channels.TlsSettings | None = channels.FROM_ENV,
) -> SeedCounts:
    """Seed every agency at its address (name → host:port), under `tls`
    (default: this process's identity); raises grpc.RpcError if one refuses
    or is down."""
    counts: dict[str, int] = {}
    for name in AGENCY_NAMES:
        with channels.sync_channel(addresses[name], tls=tls) as channel:
            counts.update(SEEDERS[name](channel, people))
    return SeedCounts(**counts)
