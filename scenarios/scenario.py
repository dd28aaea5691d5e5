"""A load scenario: who is seeded, what is declared, how fast, and what breaks.

`load_scenario(path)` reads a YAML scenario file (the format is described in
scenarios/README.md, "Scenario files"); `Scenario.constant(...)` builds the flat
load the benchmark uses. Rates are dossiers per second, times are seconds from
the start of the replay.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from scenarios.scenario_fields import ScenarioError

__all__ = [
    "AGENCIES",
    "BIRTHS_SHARE",
    "ROUND_ROBIN",
    "AddedLatency",
    "AgencyKill",
    "AgencyOutage",
    "BrokerRestart",
    "DatabaseRestart",
    "GatewayKill",
    "Phase",
    "Scenario",
    "ScenarioError",
    "load_scenario",
]

AGENCIES = ("health", "population", "insurance")
# Vietnam registers about 1.4 M births and 0.65 M deaths a year (shared/domain.md).
BIRTHS_PER_YEAR = 1_400_000
DEATHS_PER_YEAR = 650_000
BIRTHS_SHARE = BIRTHS_PER_YEAR / (BIRTHS_PER_YEAR + DEATHS_PER_YEAR)
FUNERAL_CLAIM_SHARE = 0.5
DRAIN_TIMEOUT_S = 60.0
GATEWAY = "gateway"
ROUND_ROBIN = "round-robin"


def gateway_names(count: int) -> tuple[str, ...]:
    """The stack's names for `count` gateway processes: gateway, gateway-2, gateway-3..."""
    return tuple(GATEWAY if i == 1 else f"{GATEWAY}-{i}" for i in range(1, count + 1))


def _positive(what: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{what} must be a positive finite number, got {value}")


@dataclass(frozen=True)
class Phase:
    """`duration_s` seconds whose rate goes linearly from `rate_from` to `rate_to`."""

    duration_s: float
    rate_from: float
    rate_to: float = math.nan  # not given: flat, the same as rate_from

    def __post_init__(self) -> None:
        if math.isnan(self.rate_to):
            object.__setattr__(self, "rate_to", self.rate_from)
        _positive("a phase's duration_s", self.duration_s)
        if not (self.rate_from >= 0 and self.rate_to >= 0):
            raise ValueError(f"rates must not be negative: {self.rate_from}, {self.rate_to}")

    @property
    def expected(self) -> float:
        """Expected arrivals: the integral of the rate over the phase."""
        return (self.rate_from + self.rate_to) / 2 * self.duration_s

    @property
    def peak(self) -> float:
        return max(self.rate_from, self.rate_to)

    def rate_at(self, t: float) -> float:
        """The rate `t` seconds into the phase."""
        return self.rate_from + (self.rate_to - self.rate_from) * t / self.duration_s


class _Window:
    """What every scheduled fault has: when it starts and how long it lasts
    (each fault declares the two fields itself, as a dataclass field)."""

    at_s: float
    duration_s: float

    @property
    def end_s(self) -> float:
        return self.at_s + self.duration_s


@dataclass(frozen=True)
class AgencyOutage(_Window):
    """The agency answers nothing from `at_s` for `duration_s` seconds."""

    agency: str
    at_s: float
    duration_s: float


@dataclass(frozen=True)
class AddedLatency(_Window):
    """Every call to the agency takes `latency_ms` longer during the window."""

    agency: str
    at_s: float
    duration_s: float
    latency_ms: float


@dataclass(frozen=True)
class AgencyKill(_Window):
    """The agency's process is SIGKILLed at `at_s` and started again `duration_s` later."""

    agency: str
    at_s: float
    duration_s: float


@dataclass(frozen=True)
class BrokerRestart(_Window):
    """The Kafka broker is SIGKILLed at `at_s` and started again on its port
    and data `duration_s` later (the apache broker only: its data survives)."""

    at_s: float
    duration_s: float


@dataclass(frozen=True)
class DatabaseRestart(_Window):
    """The stack's PostgreSQL server is SIGKILLed at `at_s` and started again
    on its port and data `duration_s` later (`--store postgres` only: a
    server the stack runs; SQLite files have no process to kill)."""

    at_s: float
    duration_s: float


@dataclass(frozen=True)
class GatewayKill:
    """A gateway SIGKILLed every `every_s` seconds from `from_s` until before
    `until_s`, each started again after a delay drawn (seeded) between
    `restart_min_s` and `restart_max_s`. `gateway` is a gateway's name or
    ROUND_ROBIN: each kill takes the next gateway in turn."""

    every_s: float
    restart_min_s: float
    restart_max_s: float
    gateway: str
    from_s: float
    until_s: float

    def kill_times(self) -> list[float]:
        times: list[float] = []
        at = self.from_s
        while at < self.until_s - 1e-9:
            times.append(at)
            at = self.from_s + len(times) * self.every_s
        return times


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    seed: int
    population: int  # citizens bulk-seeded into the registries before the replay
    births_share: float  # share of declarations that are births; the rest are deaths
    funeral_claim_share: float  # share of death declarations claiming the funeral allowance
    # Fault kind (scenarios.faults) -> share of the declarations it can apply to:
    # a birth-only fault's share of the births, a death-only one's of the deaths.
    faults: Mapping[str, float]
    arrival: tuple[Phase, ...]
    outages: tuple[AgencyOutage, ...] = ()
    latencies: tuple[AddedLatency, ...] = ()
    drain_timeout_s: float = DRAIN_TIMEOUT_S
    gateways: int = 1  # gateway processes sharing the work (and one saga store file)
    gateway_kills: tuple[GatewayKill, ...] = ()
    agency_kills: tuple[AgencyKill, ...] = ()
    broker_restarts: tuple[BrokerRestart, ...] = ()
    database_restarts: tuple[DatabaseRestart, ...] = ()

    def __post_init__(self) -> None:
        # A read-only copy, so a frozen Scenario cannot change through its faults.
        object.__setattr__(self, "faults", MappingProxyType(dict(self.faults)))
        object.__setattr__(self, "arrival", tuple(self.arrival))
        object.__setattr__(self, "outages", tuple(self.outages))
        object.__setattr__(self, "latencies", tuple(self.latencies))
        object.__setattr__(self, "gateway_kills", tuple(self.gateway_kills))
        object.__setattr__(self, "agency_kills", tuple(self.agency_kills))
        object.__setattr__(self, "broker_restarts", tuple(self.broker_restarts))
        object.__setattr__(self, "database_restarts", tuple(self.database_restarts))
        check_gateway_kills(self.gateway_kills, self.gateways)

    @property
    def gateway_names(self) -> tuple[str, ...]:
        return gateway_names(self.gateways)

    def with_gateways(self, count: int) -> Scenario:
        """The same scenario run by `count` gateway processes (ValueError if a
        gateway kill names a gateway that would not run)."""
        if count < 1:
            raise ValueError(f"at least one gateway is needed, got {count}")
        return dataclasses.replace(self, gateways=count)

    @property
    def duration_s(self) -> float:
        """Seconds from the first possible submission to the last (drain not included)."""
        return sum(phase.duration_s for phase in self.arrival)

    @property
    def expected_declarations(self) -> float:
        """The integral of the arrival rate: how many declarations to expect."""
        return sum(phase.expected for phase in self.arrival)

    @property
    def peak_rate(self) -> float:
        return max((phase.peak for phase in self.arrival), default=0.0)

    def rate_at(self, t: float) -> float:
        """The arrival rate `t` seconds from the start (0 outside the arrival)."""
        start = 0.0
        for phase in self.arrival:
            if start <= t < start + phase.duration_s:
                return phase.rate_at(t - start)
            start += phase.duration_s
        return 0.0

    def with_rate(self, peak: float) -> Scenario:
        """The same ramp shape, every rate scaled so that the peak is `peak`."""
        _positive("the peak rate", peak)
        if self.peak_rate <= 0:
            raise ValueError(f"scenario {self.name!r} sends nothing: no rate to scale")
        k = peak / self.peak_rate
        phases = tuple(Phase(p.duration_s, p.rate_from * k, p.rate_to * k) for p in self.arrival)
        return dataclasses.replace(self, arrival=phases)

    def with_duration(self, seconds: float) -> Scenario:
        """Phases and fault windows stretched or squeezed so the arrival lasts `seconds`."""
        _positive("the duration", seconds)
        k = seconds / self.duration_s
        return dataclasses.replace(
            self,
            arrival=tuple(
                dataclasses.replace(p, duration_s=p.duration_s * k) for p in self.arrival
            ),
            outages=tuple(
                dataclasses.replace(o, at_s=o.at_s * k, duration_s=o.duration_s * k)
                for o in self.outages
            ),
            latencies=tuple(
                dataclasses.replace(a, at_s=a.at_s * k, duration_s=a.duration_s * k)
                for a in self.latencies
            ),
            agency_kills=tuple(
                dataclasses.replace(a, at_s=a.at_s * k, duration_s=a.duration_s * k)
                for a in self.agency_kills
            ),
            broker_restarts=tuple(
                dataclasses.replace(b, at_s=b.at_s * k, duration_s=b.duration_s * k)
                for b in self.broker_restarts
            ),
            database_restarts=tuple(
                dataclasses.replace(d, at_s=d.at_s * k, duration_s=d.duration_s * k)
                for d in self.database_restarts
            ),
            # The restart delay is the processes' own business, not the load's
            # shape: it stays, and check_gateway_kills refuses a squeeze below it.
            gateway_kills=tuple(
                dataclasses.replace(
                    g, every_s=g.every_s * k, from_s=g.from_s * k, until_s=g.until_s * k
                )
                for g in self.gateway_kills
            ),
        )

    @classmethod
    def constant(
        cls,
        rate: float,
        duration_s: float,
        *,
        name: str = "constant",
        seed: int = 0,
        population: int = 1_000,
        births_share: float = BIRTHS_SHARE,
        funeral_claim_share: float = FUNERAL_CLAIM_SHARE,
        drain_timeout_s: float = DRAIN_TIMEOUT_S,
    ) -> Scenario:
        """One flat phase, no faults, no outages: the benchmark's load."""
        _positive("the rate", rate)
        return cls(
            name=name,
            description=f"{rate:g} dossiers/s for {duration_s:g} s, no faults",
            seed=seed,
            population=population,
            births_share=births_share,
            funeral_claim_share=funeral_claim_share,
            faults={},
            arrival=(Phase(duration_s, rate, rate),),
            drain_timeout_s=drain_timeout_s,
        )


def check_gateway_kills(kills: tuple[GatewayKill, ...], gateways: int) -> None:
    """What the parser checks too, for scenarios changed after parsing
    (--gateways, --duration): a named gateway must run, and a gateway is
    started again before the next kill could reach it."""
    names = gateway_names(gateways)
    for kill in kills:
        if kill.gateway != ROUND_ROBIN and kill.gateway not in names:
            raise ValueError(
                f"a gateway kill names {kill.gateway}, but only {', '.join(names)} "
                f"run ({gateways} gateway{'s' if gateways > 1 else ''})"
            )
        if kill.restart_max_s >= kill.every_s:
            raise ValueError(
                f"gateway kills every {kill.every_s:g} s cannot wait {kill.restart_max_s:g} s "
                "to restart: the next kill would come first"
            )


def load_scenario(path: Path | str) -> Scenario:
    """Read and check a scenario file; ScenarioError says which field is wrong and how."""
    # Imported here: the parser builds the dataclasses above, so it imports this module.
    from scenarios.scenario_file import parse_scenario  # noqa: PLC0415

    return parse_scenario(Path(path))
