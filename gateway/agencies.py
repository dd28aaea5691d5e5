"""Channels and stubs to the agencies' registries, and how their answers are read.

CANCELLED, UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED and ABORTED are transient:
the call is retried. Any other failure is the agency's decision about this
dossier and rejects it, with the agency's reason (google.rpc.ErrorInfo).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import grpc

from common.agencies import UnknownAgencyError, agency
from common.channels import channel as open_channel
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
    """A stub per agency (common/agencies.py), by the agency's name."""

    stubs: dict[str, Any]
    channels: list[grpc.aio.Channel]
    deadline_seconds: float
    # One per agency, made on first use: see gateway/breaker.py.
    breakers: dict[str, Breaker] = field(default_factory=dict)

    @classmethod
    def connect(cls, addresses: Mapping[str, str], *, deadline_seconds: float) -> Agencies:
        """A channel to each agency at its host:port; they connect lazily."""
        channels = {
            # Under the gateway's own identity (its TLS settings), which the
            # agencies' access policy grants the step RPCs.
            name: open_channel(address, options=AGENCY_CHANNEL_OPTIONS)
            for name, address in addresses.items()
        }
        stubs = {name: agency(name).stub(channel) for name, channel in channels.items()}
        return cls(stubs, list(channels.values()), deadline_seconds)

    def stub(self, name: str) -> Any:
        try:
            return self.stubs[name]
        except KeyError:
            raise UnknownAgencyError(
                f"the gateway has no channel to {name[:40]!r} (it has: {', '.join(self.stubs)})"
            ) from None

    # Typed for the step handlers, which each call one contract's RPCs.
    @property
    def population(self) -> population_pb2_grpc.PopulationRegistryServiceAsyncStub:
        return cast(
            "population_pb2_grpc.PopulationRegistryServiceAsyncStub", self.stub("population")
        )

    @property
    def insurance(self) -> insurance_pb2_grpc.InsuranceRegistryServiceAsyncStub:
        return cast("insurance_pb2_grpc.InsuranceRegistryServiceAsyncStub", self.stub("insurance"))

    @property
    def health(self) -> health_pb2_grpc.HealthRegistryServiceAsyncStub:
        return cast("health_pb2_grpc.HealthRegistryServiceAsyncStub", self.stub("health"))

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
                # The correlation id of a step's call is its dossier's id
                # (steps.StepInput): said as such too, for the agencies'
                # message logs (a lookup carries no request id to read it from).
                metadata=(("x-correlation-id", correlation_id), ("x-dossier-id", correlation_id)),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in TRANSIENT:
                breaker.failed()
                raise TransientAgencyError(agency, error.code().name) from error
            breaker.succeeded()  # a refusal is an answer: the agency is up
            raise AgencyRefusalError(agency, reason_of(error), error.details() or "") from error
        breaker.succeeded()
        return answer
