"""gRPC face of the population registry: decode, run once, encode.

Each call is one unit of work (common.database): the rules get a registry
over that transaction's store, and run on a worker thread, never on the
event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from common.database import Connection, Database
from common.idempotency import RegistryCalls
from common.seeding import read_batches
from lienthong.population.v1 import population_pb2 as pb
from lienthong.population.v1 import population_pb2_grpc as pb_grpc
from services.population.registry import PopulationRegistry
from services.population.seed import SeedBatch

Context = grpc.aio.ServicerContext[Any, Any]
ResponseT = TypeVar("ResponseT", bound=Message)
# The rules over one unit of work's connection.
RegistryFor = Callable[[Connection], PopulationRegistry]
# One SeedPopulation batch checked beyond the contract, as rows (no store needed).
SeedRows = Callable[[pb.SeedPopulationRequest, int], SeedBatch]


class PopulationRegistryServicer(pb_grpc.PopulationRegistryServiceServicer):
    def __init__(self, database: Database, registry: RegistryFor, seed_rows: SeedRows) -> None:
        self.calls = RegistryCalls(database, registry)
        self.seed_rows = seed_rows

    async def RegisterBirth(
        self, request: pb.RegisterBirthRequest, context: Context
    ) -> pb.RegisterBirthResponse:
        return await self.calls.once(
            "RegisterBirth",
            request,
            pb.RegisterBirthResponse,
            lambda registry: registry.register_birth(request),
        )

    async def RegisterPermanentResidence(
        self, request: pb.RegisterPermanentResidenceRequest, context: Context
    ) -> pb.RegisterPermanentResidenceResponse:
        return await self.calls.once(
            "RegisterPermanentResidence",
            request,
            pb.RegisterPermanentResidenceResponse,
            lambda registry: registry.register_permanent_residence(request),
        )

    async def RemovePermanentResidence(
        self, request: pb.RemovePermanentResidenceRequest, context: Context
    ) -> pb.RemovePermanentResidenceResponse:
        return await self.calls.once(
            "RemovePermanentResidence",
            request,
            pb.RemovePermanentResidenceResponse,
            lambda registry: registry.remove_permanent_residence(request),
        )

    async def RegisterDeath(
        self, request: pb.RegisterDeathRequest, context: Context
    ) -> pb.RegisterDeathResponse:
        return await self.calls.once(
            "RegisterDeath",
            request,
            pb.RegisterDeathResponse,
            lambda registry: registry.register_death(request),
        )

    async def GetCitizen(
        self, request: pb.GetCitizenRequest, context: Context
    ) -> pb.GetCitizenResponse:
        return await self.calls.run(lambda registry: registry.get_citizen(request))

    async def GetHousehold(
        self, request: pb.GetHouseholdRequest, context: Context
    ) -> pb.GetHouseholdResponse:
        return await self.calls.run(lambda registry: registry.get_household(request))

    async def SeedPopulation(
        self, request_iterator: AsyncIterator[pb.SeedPopulationRequest], context: Context
    ) -> pb.SeedPopulationResponse:
        batches = await read_batches(request_iterator, self.seed_rows)
        # One attempt: a refused seed would be refused again, at a seed's cost.
        return await self.calls.run(lambda registry: registry.seed(batches), attempts=1)
