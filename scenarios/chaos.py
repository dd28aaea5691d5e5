"""A scenario's faults as one timeline: what is stopped or killed, when, and
when it comes back; and the windows whose dossiers wait for an agency or the
broker by design.

Gateway kills are expanded here (every `every_s` seconds, the restart delay
drawn from the scenario's seed, round-robin over the gateways), so a replay
and its report agree on the same plan, and the same seed gives the same
kills.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from scenarios.scenario import ROUND_ROBIN, Scenario

__all__ = [
    "AGENCY_KILL",
    "AGENCY_OUTAGE",
    "BROKER",
    "BROKER_RESTART",
    "DATABASE",
    "DATABASE_RESTART",
    "GATEWAY_KILL",
    "PlannedFault",
    "plan_faults",
    "waiting_windows",
]

AGENCY_OUTAGE = "outage"  # the agency's process stopped (SIGTERM), started again
AGENCY_KILL = "agency_kill"  # SIGKILL, started again
GATEWAY_KILL = "gateway_kill"  # SIGKILL, started again
BROKER_RESTART = "broker_restart"  # SIGKILL, started again on its port and data
BROKER = "kafka"
DATABASE_RESTART = "database_restart"  # SIGKILL, started again on its port and data
DATABASE = "postgres"
# Dossiers sent while one of these is down wait for it by design (the saga
# retries the agency; nothing moves without the broker, nor without the
# records); a gateway kill is not among them: the other gateway is meant to
# carry on.
_WAITING_KINDS = (AGENCY_OUTAGE, AGENCY_KILL, BROKER_RESTART, DATABASE_RESTART)


@dataclass(frozen=True)
class PlannedFault:
    kind: str
    target: str  # an agency, a gateway's name, or BROKER
    at_s: float  # seconds from the replay's start
    end_s: float  # when it is started again

    @property
    def label(self) -> str:
        return f"{self.kind} {self.target} at {self.at_s:g} s"


def plan_faults(scenario: Scenario) -> list[PlannedFault]:
    """Every fault of the scenario in time order (added latency is not a fault
    here: nothing stops)."""
    faults = [PlannedFault(AGENCY_OUTAGE, o.agency, o.at_s, o.end_s) for o in scenario.outages]
    faults += [PlannedFault(AGENCY_KILL, k.agency, k.at_s, k.end_s) for k in scenario.agency_kills]
    faults += [
        PlannedFault(BROKER_RESTART, BROKER, b.at_s, b.end_s) for b in scenario.broker_restarts
    ]
    faults += [
        PlannedFault(DATABASE_RESTART, DATABASE, d.at_s, d.end_s)
        for d in scenario.database_restarts
    ]
    rng = random.Random(f"{scenario.seed}/gateway-kills")
    names = scenario.gateway_names
    turn = 0
    for schedule in scenario.gateway_kills:
        for at in schedule.kill_times():
            if schedule.gateway == ROUND_ROBIN:
                target = names[turn % len(names)]
                turn += 1
            else:
                target = schedule.gateway
            delay = rng.uniform(schedule.restart_min_s, schedule.restart_max_s)
            faults.append(PlannedFault(GATEWAY_KILL, target, at, at + delay))
    return sorted(faults, key=lambda f: (f.at_s, f.kind, f.target))


def waiting_windows(faults: list[PlannedFault]) -> list[tuple[float, float]]:
    """[at, end) of the faults whose dossiers wait by design: agency outages
    and kills, broker and database restarts."""
    return [(f.at_s, f.end_s) for f in faults if f.kind in _WAITING_KINDS]
