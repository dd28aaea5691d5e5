"""gRPC face of the hospital registry: decode, run once, encode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from common.idempotency import run_once
from common.seeding import read_batches
from common.sqlite import transaction
from lienthong.health.v1 import health_pb2 as pb
from lienthong.health.v1 import health_pb2_grpc as pb_grpc
from services.health.registry import HospitalRegistry

Context = grpc.aio.ServicerContext[Any, Any]


class HealthRegistryServicer(pb_grpc.HealthRegistryServiceServicer):
    def __init__(self, registry: HospitalRegistry) -> None:
        self.registry = registry
        self.conn = registry.store.conn

    async def IssueBirthCertificate(
        self, request: pb.IssueBirthCertificateRequest, context: Context
    ) -> pb.IssueBirthCertificateResponse:
        return run_once(
            self.conn,
            "IssueBirthCertificate",
            request,
            pb.IssueBirthCertificateResponse,
            lambda: self.registry.issue_birth_certificate(request),
        )

    async def VerifyBirthCertificate(
        self, request: pb.VerifyBirthCertificateRequest, context: Context
    ) -> pb.VerifyBirthCertificateResponse:
        return self.registry.verify_birth_certificate(request)

    async def IssueDeathNotice(
        self, request: pb.IssueDeathNoticeRequest, context: Context
    ) -> pb.IssueDeathNoticeResponse:
        return run_once(
            self.conn,
            "IssueDeathNotice",
            request,
            pb.IssueDeathNoticeResponse,
            lambda: self.registry.issue_death_notice(request),
        )

    async def VerifyDeathNotice(
        self, request: pb.VerifyDeathNoticeRequest, context: Context
    ) -> pb.VerifyDeathNoticeResponse:
        return self.registry.verify_death_notice(request)

    async def GetFacility(
        self, request: pb.GetFacilityRequest, context: Context
    ) -> pb.GetFacilityResponse:
        return self.registry.get_facility(request)

    async def SeedHospitalRecords(
        self, request_iterator: AsyncIterator[pb.SeedHospitalRecordsRequest], context: Context
    ) -> pb.SeedHospitalRecordsResponse:
        batches = await read_batches(request_iterator, self.registry.seed_rows)
        self.registry.check_stream(batches)
        added = [0, 0, 0]
        sent = [sum(len(rows[kind]) for rows in batches) for kind in range(3)]
        with transaction(self.conn):
            for facilities, births, deaths in batches:
                counts = self.registry.store.seed(facilities, births, deaths)
                added = [a + c for a, c in zip(added, counts, strict=True)]
            # Fewer rows added than sent: some keys were already stored. Only
            # then look whether they are replays or different records, so a
            # clean seed pays nothing; raising rolls everything back.
            if added != sent:
                conflict = self.registry.stored_conflict(batches)
                if conflict is not None:
                    raise conflict
        return pb.SeedHospitalRecordsResponse(
            facilities=added[0], birth_certificates=added[1], death_notices=added[2]
        )
