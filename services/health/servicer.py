"""gRPC face of the hospital registry: decode, run once, encode.

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
from lienthong.health.v1 import health_pb2 as pb
from lienthong.health.v1 import health_pb2_grpc as pb_grpc
from services.health.registry import HospitalRegistry, SeedRows

Context = grpc.aio.ServicerContext[Any, Any]
ResponseT = TypeVar("ResponseT", bound=Message)
# The rules over one unit of work's connection.
RegistryFor = Callable[[Connection], HospitalRegistry]
# One seed batch checked beyond the contract, as rows (no store needed).
BatchRows = Callable[[pb.SeedHospitalRecordsRequest, int], SeedRows]


class HealthRegistryServicer(pb_grpc.HealthRegistryServiceServicer):
    def __init__(self, database: Database, registry: RegistryFor, seed_rows: BatchRows) -> None:
        self.calls = RegistryCalls(database, registry)
        self.seed_rows = seed_rows

    async def IssueBirthCertificate(
        self, request: pb.IssueBirthCertificateRequest, context: Context
    ) -> pb.IssueBirthCertificateResponse:
        return await self.calls.once(
            "IssueBirthCertificate",
            request,
            pb.IssueBirthCertificateResponse,
            lambda registry: registry.issue_birth_certificate(request),
        )

    async def VerifyBirthCertificate(
        self, request: pb.VerifyBirthCertificateRequest, context: Context
    ) -> pb.VerifyBirthCertificateResponse:
        return await self.calls.run(lambda registry: registry.verify_birth_certificate(request))

    async def IssueDeathNotice(
        self, request: pb.IssueDeathNoticeRequest, context: Context
    ) -> pb.IssueDeathNoticeResponse:
        return await self.calls.once(
            "IssueDeathNotice",
            request,
            pb.IssueDeathNoticeResponse,
            lambda registry: registry.issue_death_notice(request),
        )

    async def VerifyDeathNotice(
        self, request: pb.VerifyDeathNoticeRequest, context: Context
    ) -> pb.VerifyDeathNoticeResponse:
        return await self.calls.run(lambda registry: registry.verify_death_notice(request))

    async def GetFacility(
        self, request: pb.GetFacilityRequest, context: Context
    ) -> pb.GetFacilityResponse:
        return await self.calls.run(lambda registry: registry.get_facility(request))

    async def SeedHospitalRecords(
        self, request_iterator: AsyncIterator[pb.SeedHospitalRecordsRequest], context: Context
    ) -> pb.SeedHospitalRecordsResponse:
        batches = await read_batches(request_iterator, self.seed_rows)
        # One attempt: a refused seed would be refused again, at a seed's cost.
        return await self.calls.run(lambda registry: registry.seed(batches), attempts=1)
