"""Channels and stubs to the three registries, and how their answers are read.

CANCELLED, UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED and ABORTED are transient:
the call is retried. Any other failure is the agency's decision about this
dossier and rejects it, with the agency's reason (google.rpc.ErrorInfo).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from common.errors import error_info
from gateway.breaker import Breaker
from lienthong.health.v1 import health_pb2_grpc
from lienthong.insurance.v1 import insurance_pb2_grpc
from lienthong.population.v1 import population_pb2_grpc

TRANSIENT = frozenset(
    {
        # Never an agency's decision about a dossier: an overloaded server
        # drops a call it had not started with CANCELLED. Taken for a refusal
        # it rejected 634 births in a chaos replay on the embedded broker.
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)

T = TypeVar("T")

# gRPC's reconnect backoff grows to 120 s by default: after an agency was down
# for 30 s its channel could stay idle for a minute or two more while the
# agency already served again (a replay saw steps wait 11-14 s after a 4 s
# outage). Capped at 2 s, the breakers of a chaos replay still closed about
# 4 s after the agency was back; at 0.5 s a channel tries a local port twice
# a second while the agency is down, which costs nothing worth counting.
AGENCY_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 500),
]


class TransientAgencyError(Exception):
    """Worth retrying: the agency may answer later."""

    def __init__(self, agency: str, code: str) -> None:
        super().__init__(f"{agency}: {code}")
        self.agency = agency


class AgencyRefusalError(Exception):
    """The agency refused for this dossier; the dossier is rejected."""

    def __init__(self, agency: str, reason: str, message: str) -> None:
        super().__init__(f"{agency}: {reason}: {message}")
        self.agency = agency
        self.reason = reason
        self.message = message


def reason_of(error: grpc.aio.AioRpcError) -> str:
    info = error_info(error)
    return str(info.reason) if info is not None else error.code().name


@dataclass
class Agencies:
    population: population_pb2_grpc.PopulationRegistryServiceAsyncStub
    insurance: insurance_pb2_grpc.InsuranceRegistryServiceAsyncStub
    health: health_pb2_grpc.HealthRegistryServiceAsyncStub
    channels: list[grpc.aio.Channel]
    deadline_seconds: float
    # One per agency, made on first use: see gateway/breaker.py.
    breakers: dict[str, Breaker] = field(default_factory=dict)

    @classmethod
    def connect(
        cls, *, population: str, insurance: str, health: str, deadline_seconds: float
    ) -> Agencies:
        channels = [
            grpc.aio.insecure_channel(a, options=AGENCY_CHANNEL_OPTIONS)
            for a in (population, insurance, health)
        ]
        return cls(
            population_pb2_grpc.PopulationRegistryServiceStub(channels[0]),
            insurance_pb2_grpc.InsuranceRegistryServiceStub(channels[1]),
            health_pb2_grpc.HealthRegistryServiceStub(channels[2]),
            channels,
            deadline_seconds,
        )

    def breaker(self, agency: str) -> Breaker:
        if agency not in self.breakers:
            self.breakers[agency] = Breaker(agency)
        return self.breakers[agency]

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()

    async def call(
        self,
        agency: str,
        method: grpc.aio.UnaryUnaryMultiCallable[Any, T],
        request: Any,
        correlation_id: str,
    ) -> T:
        """One agency call with a deadline, its failure classified; the
        agency's breaker hears whether it answered."""
        breaker = self.breaker(agency)
        try:
            answer = await method(
                request,
                timeout=self.deadline_seconds,
                metadata=(("x-correlation-id", correlation_id),),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in TRANSIENT:
                breaker.failed()
                raise TransientAgencyError(agency, error.code().name) from error
            breaker.succeeded()  # a refusal is an answer: the agency is up
            raise AgencyRefusalError(agency, reason_of(error), error.details() or "") from error
        breaker.succeeded()
        return answer
