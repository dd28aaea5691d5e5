"""Step commands go to their agency's lane (a topic of its own)."""

from __future__ import annotations

import pytest

from gateway.events import STEP_LANES, Topics
from gateway.procedures import BIRTH_STEPS, DEATH_STEPS, GATEWAY, StepPlan
from gateway.steps import HANDLERS
from gateway.worker import command_topic
from lienthong.events.v1 import events_pb2 as ev

TOPICS = Topics.with_prefix("t")
AGENCY_STEPS = [p for p in (*BIRTH_STEPS, *DEATH_STEPS) if p.agency != GATEWAY]


@pytest.mark.parametrize("plan", AGENCY_STEPS, ids=lambda p: p.name)
def test_each_agency_step_goes_to_its_agencys_lane(plan: StepPlan) -> None:
    command = ev.StepCommand(dossier_id="birth-1", step=plan.name)
    assert command_topic(TOPICS, command) == f"t.step-commands.{plan.agency}"


def test_the_executor_names_the_same_agency_as_the_lane() -> None:
    # The outcome's agency comes from the executor's table; a step in one
    # agency's lane must be that agency's.
    for plan in AGENCY_STEPS:
        assert HANDLERS[plan.name][0] == plan.agency


def test_every_registry_has_a_lane_and_ensure_topics_is_given_them() -> None:
    assert {p.agency for p in AGENCY_STEPS} == set(STEP_LANES)
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
    with pytest.raises(KeyError):
        command_topic(TOPICS, ev.StepCommand(dossier_id="birth-1", step="no_such_step"))
