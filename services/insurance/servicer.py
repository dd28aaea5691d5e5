"""gRPC face of the social security registry: decode, run once, encode.

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
from lienthong.insurance.v1 import insurance_pb2 as pb
from lienthong.insurance.v1 import insurance_pb2_grpc as pb_grpc
from services.insurance.registry import InsuranceRegistry, SeedRows

Context = grpc.aio.ServicerContext[Any, Any]
ResponseT = TypeVar("ResponseT", bound=Message)
# The rules over one unit of work's connection.
RegistryFor = Callable[[Connection], InsuranceRegistry]


class InsuranceRegistryServicer(pb_grpc.InsuranceRegistryServiceServicer):
    def __init__(self, database: Database, registry: RegistryFor, seed_rows: SeedRows) -> None:
        self.calls = RegistryCalls(database, registry)
        self.seed_rows = seed_rows

    async def IssueChildHealthInsuranceCard(
        self, request: pb.IssueChildHealthInsuranceCardRequest, context: Context
    ) -> pb.IssueChildHealthInsuranceCardResponse:
        return await self.calls.once(
            "IssueChildHealthInsuranceCard",
            request,
            pb.IssueChildHealthInsuranceCardResponse,
            lambda registry: registry.issue_child_health_insurance_card(request),
        )

    async def SettleFuneralAllowance(
        self, request: pb.SettleFuneralAllowanceRequest, context: Context
    ) -> pb.SettleFuneralAllowanceResponse:
        return await self.calls.once(
            "SettleFuneralAllowance",
            request,
            pb.SettleFuneralAllowanceResponse,
            lambda registry: registry.settle_funeral_allowance(request),
        )

    async def EndCoverage(
        self, request: pb.EndCoverageRequest, context: Context
    ) -> pb.EndCoverageResponse:
        return await self.calls.once(
            "EndCoverage",
            request,
            pb.EndCoverageResponse,
            lambda registry: registry.end_coverage(request),
        )

    async def GetParticipant(
        self, request: pb.GetParticipantRequest, context: Context
    ) -> pb.GetParticipantResponse:
        return await self.calls.run(lambda registry: registry.get_participant(request))

    async def CheckCoverage(
        self, request: pb.CheckCoverageRequest, context: Context
    ) -> pb.CheckCoverageResponse:
        return await self.calls.run(lambda registry: registry.check_coverage(request))

    async def SeedParticipants(
        self, request_iterator: AsyncIterator[pb.SeedParticipantsRequest], context: Context
    ) -> pb.SeedParticipantsResponse:
        batches = await read_batches(request_iterator, self.seed_rows)
        InsuranceRegistry.check_stream(batches)
        # One attempt: a refused seed would be refused again, at a seed's cost.
        added = await self.calls.run(lambda registry: registry.seed(batches), attempts=1)
        return pb.SeedParticipantsResponse(participants=added)
