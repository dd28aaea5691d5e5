"""Step commands go to their agency's lane (a topic of its own)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.events import STEP_LANES, Topics
from gateway.executor import plan_of
from gateway.procedures import (
    BIRTH,
    DEATH,
    GATEWAY,
    ProcedureGroup,
    StepPlan,
    UnknownProcedureError,
)
from gateway.worker import command_topic
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2 as pb

TOPICS = Topics.with_prefix("t")
AGENCY_STEPS = [(g, p) for g in (BIRTH, DEATH) for p in g.steps if p.agency != GATEWAY]


def command(group: ProcedureGroup[Any], step: str) -> ev.StepCommand:
    # As the saga sends it: with the dossier, whose kind names its group.
    return ev.StepCommand(dossier_id="d-1", step=step, dossier=pb.Dossier(kind=group.kind))


@pytest.mark.parametrize(("group", "plan"), AGENCY_STEPS, ids=lambda p: getattr(p, "name", ""))
def test_each_agency_step_goes_to_its_agencys_lane(
    group: ProcedureGroup[Any], plan: StepPlan
) -> None:
    assert command_topic(TOPICS, command(group, plan.name)) == f"t.step-commands.{plan.agency}"


def test_the_executor_names_the_same_agency_as_the_lane() -> None:
    # The outcome's agency is the executor's step's; a step in one agency's
    # lane must be that agency's.
    for group, plan in AGENCY_STEPS:
        assert plan_of(command(group, plan.name)).agency == plan.agency


def test_every_registry_has_a_lane_and_ensure_topics_is_given_them() -> None:
    assert {p.agency for _, p in AGENCY_STEPS} == set(STEP_LANES)
    assert set(TOPICS.step_lanes.values()) == {
        "t.step-commands.health",
        "t.step-commands.population",
        "t.step-commands.insurance",
    }
    assert set(TOPICS.step_lanes.values()) <= set(TOPICS.all())
    # The topic of before the lanes is still created and consumed.
    assert "t.step-commands" in TOPICS.all()


def test_a_step_of_an_agency_without_a_lane_goes_to_the_shared_topic() -> None:
    assert TOPICS.step_commands_for(GATEWAY) == "t.step-commands"


def test_an_unknown_step_is_refused_not_sent_somewhere() -> None:
    with pytest.raises(UnknownProcedureError):
        command_topic(TOPICS, command(BIRTH, "no_such_step"))
