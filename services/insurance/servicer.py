"""gRPC face of the social security registry: decode, run once, encode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from common.idempotency import run_once
from common.seeding import read_batches
from common.sqlite import transaction
from lienthong.insurance.v1 import insurance_pb2 as pb
from lienthong.insurance.v1 import insurance_pb2_grpc as pb_grpc
from services.insurance.registry import InsuranceRegistry

Context = grpc.aio.ServicerContext[Any, Any]


class InsuranceRegistryServicer(pb_grpc.InsuranceRegistryServiceServicer):
    def __init__(self, registry: InsuranceRegistry) -> None:
        self.registry = registry
        self.conn = registry.store.conn

    async def IssueChildHealthInsuranceCard(
        self, request: pb.IssueChildHealthInsuranceCardRequest, context: Context
    ) -> pb.IssueChildHealthInsuranceCardResponse:
        return run_once(
            self.conn,
            "IssueChildHealthInsuranceCard",
            request,
            pb.IssueChildHealthInsuranceCardResponse,
            lambda: self.registry.issue_child_health_insurance_card(request),
        )

    async def SettleFuneralAllowance(
        self, request: pb.SettleFuneralAllowanceRequest, context: Context
    ) -> pb.SettleFuneralAllowanceResponse:
        return run_once(
            self.conn,
            "SettleFuneralAllowance",
            request,
            pb.SettleFuneralAllowanceResponse,
            lambda: self.registry.settle_funeral_allowance(request),
        )

    async def EndCoverage(
        self, request: pb.EndCoverageRequest, context: Context
    ) -> pb.EndCoverageResponse:
        return run_once(
            self.conn,
            "EndCoverage",
            request,
            pb.EndCoverageResponse,
            lambda: self.registry.end_coverage(request),
        )

    async def GetParticipant(
        self, request: pb.GetParticipantRequest, context: Context
    ) -> pb.GetParticipantResponse:
        return self.registry.get_participant(request)

    async def CheckCoverage(
        self, request: pb.CheckCoverageRequest, context: Context
    ) -> pb.CheckCoverageResponse:
        # A read: no request id, nothing to run once.
        return self.registry.check_coverage(request)

    async def SeedParticipants(
        self, request_iterator: AsyncIterator[pb.SeedParticipantsRequest], context: Context
    ) -> pb.SeedParticipantsResponse:
        batches = await read_batches(request_iterator, self.registry.seed_rows)
        self.registry.check_stream(batches)
        added = 0
        with transaction(self.conn):
            for rows in batches:
                added += self.registry.store.seed(rows)
            # Fewer rows added than sent: some numbers were already stored.
            # Only then look whether they are replays or someone else's, so a
            # clean seed pays nothing; raising rolls everything back.
            if added != sum(len(rows) for rows in batches):
                conflict = self.registry.stored_conflict(batches)
                if conflict is not None:
                    raise conflict
        return pb.SeedParticipantsResponse(participants=added)
