"""gRPC face of the population registry: decode, run once, encode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from common.idempotency import run_once
from common.seeding import read_batches
from lienthong.population.v1 import population_pb2 as pb
from lienthong.population.v1 import population_pb2_grpc as pb_grpc
from services.population.registry import PopulationRegistry

Context = grpc.aio.ServicerContext[Any, Any]


class PopulationRegistryServicer(pb_grpc.PopulationRegistryServiceServicer):
    def __init__(self, registry: PopulationRegistry) -> None:
        self.registry = registry
        self.conn = registry.store.conn

    async def RegisterBirth(
        self, request: pb.RegisterBirthRequest, context: Context
    ) -> pb.RegisterBirthResponse:
        return run_once(
            self.conn,
            "RegisterBirth",
            request,
            pb.RegisterBirthResponse,
            lambda: self.registry.register_birth(request),
        )

    async def RegisterPermanentResidence(
        self, request: pb.RegisterPermanentResidenceRequest, context: Context
    ) -> pb.RegisterPermanentResidenceResponse:
        return run_once(
            self.conn,
            "RegisterPermanentResidence",
            request,
            pb.RegisterPermanentResidenceResponse,
            lambda: self.registry.register_permanent_residence(request),
        )

    async def RemovePermanentResidence(
        self, request: pb.RemovePermanentResidenceRequest, context: Context
    ) -> pb.RemovePermanentResidenceResponse:
        return run_once(
            self.conn,
            "RemovePermanentResidence",
            request,
            pb.RemovePermanentResidenceResponse,
            lambda: self.registry.remove_permanent_residence(request),
        )

    async def RegisterDeath(
        self, request: pb.RegisterDeathRequest, context: Context
    ) -> pb.RegisterDeathResponse:
        return run_once(
            self.conn,
            "RegisterDeath",
            request,
            pb.RegisterDeathResponse,
            lambda: self.registry.register_death(request),
        )

    async def GetCitizen(
        self, request: pb.GetCitizenRequest, context: Context
    ) -> pb.GetCitizenResponse:
        return self.registry.get_citizen(request)

    async def GetHousehold(
        self, request: pb.GetHouseholdRequest, context: Context
    ) -> pb.GetHouseholdResponse:
        return self.registry.get_household(request)

    async def SeedPopulation(
        self, request_iterator: AsyncIterator[pb.SeedPopulationRequest], context: Context
    ) -> pb.SeedPopulationResponse:
        batches = await read_batches(request_iterator, self.registry.seed_rows)
        return self.registry.seed(batches)
