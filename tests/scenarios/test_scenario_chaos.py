"""Scenario files' chaos fields: gateways, gateway_kill, agency_kill, broker_restart;
the chaos preset; the fault plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenarios.chaos import (
    AGENCY_KILL,
    AGENCY_OUTAGE,
    BROKER,
    BROKER_RESTART,
    DATABASE_RESTART,
    GATEWAY_KILL,
    plan_faults,
    waiting_windows,
)
from scenarios.scenario import (
    AgencyKill,
    BrokerRestart,
    DatabaseRestart,
    GatewayKill,
    ScenarioError,
    load_scenario,
)

PRESETS = Path(__file__).resolve().parents[2] / "scenarios"

BASE = """
seed: 7
population: 10
arrival:
  - {duration_s: 60, rate: 1}
"""

GOOD = (
    BASE
    + """
gateways: 2
gateway_kill:
  - {every_s: 10, restart_after_s: [1, 2], from_s: 10, until_s: 40}
agency_kill:
  - {agency: insurance, at_s: 20, duration_s: 5}
outages:
  - {agency: insurance, at_s: 30, duration_s: 5}
broker_restart:
  - {at_s: 45, duration_s: 3}
database_restart:
  - {at_s: 50, duration_s: 4}
"""
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chaos-test.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_chaos_fields_are_read(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, GOOD))
    assert scenario.gateways == 2
    assert scenario.gateway_names == ("gateway", "gateway-2")
    assert scenario.gateway_kills == (GatewayKill(10, 1, 2, "round-robin", 10, 40),)
    assert scenario.gateway_kills[0].kill_times() == [10, 20, 30]
    assert scenario.agency_kills == (AgencyKill("insurance", 20, 5),)
    assert scenario.broker_restarts == (BrokerRestart(45, 3),)
    assert scenario.database_restarts == (DatabaseRestart(50, 4),)


def test_defaults_one_gateway_no_chaos_and_kills_from_every_s_to_the_arrival_end(
    tmp_path: Path,
) -> None:
    plain = load_scenario(write(tmp_path, BASE))
    assert (plain.gateways, plain.gateway_kills, plain.agency_kills, plain.broker_restarts) == (
        1,
        (),
        (),
        (),
    )
    named = load_scenario(
        write(
            tmp_path, BASE + "gateway_kill: [{every_s: 25, restart_after_s: 2, gateway: gateway}]"
        )
    )
    assert named.gateway_kills == (GatewayKill(25, 2, 2, "gateway", 25, 60),)
    assert named.gateway_kills[0].kill_times() == [25, 50]


def test_the_fault_plan_takes_gateways_in_turn_with_seeded_restart_delays(
    tmp_path: Path,
) -> None:
    scenario = load_scenario(write(tmp_path, GOOD))
    plan = plan_faults(scenario)
    kills = [f for f in plan if f.kind == GATEWAY_KILL]
    assert [(f.target, f.at_s) for f in kills] == [
        ("gateway", 10),
        ("gateway-2", 20),
        ("gateway", 30),
    ]
    assert all(1 <= f.end_s - f.at_s <= 2 for f in kills)
    assert plan_faults(scenario) == plan  # the same seed, the same delays
    others = [(f.kind, f.target, f.at_s, f.end_s) for f in plan if f.kind != GATEWAY_KILL]
    assert others == [
        (AGENCY_KILL, "insurance", 20, 25),
        (AGENCY_OUTAGE, "insurance", 30, 35),
        (BROKER_RESTART, BROKER, 45, 48),
        (DATABASE_RESTART, "postgres", 50, 54),
    ]
    # Gateway kills are not waiting windows: the other gateway carries on.
    assert waiting_windows(plan) == [(20, 25), (30, 35), (45, 48), (50, 54)]


def test_duration_scales_the_chaos_but_not_the_restart_delay(tmp_path: Path) -> None:
    half = load_scenario(write(tmp_path, GOOD)).with_duration(30)
    assert half.gateway_kills == (GatewayKill(5, 1, 2, "round-robin", 5, 20),)
    assert half.agency_kills == (AgencyKill("insurance", 10, 2.5),)
    assert half.broker_restarts == (BrokerRestart(22.5, 1.5),)
    assert half.database_restarts == (DatabaseRestart(25, 2),)
    with pytest.raises(ValueError, match="cannot wait 2 s to restart"):
        load_scenario(write(tmp_path, GOOD)).with_duration(10)


def test_more_gateways_on_the_command_line_and_a_named_gateway_that_would_not_run(
    tmp_path: Path,
) -> None:
    scenario = load_scenario(
        write(tmp_path, GOOD.replace("from_s: 10,", "gateway: gateway-2, from_s: 10,"))
    )
    assert scenario.with_gateways(3).gateways == 3
    with pytest.raises(ValueError) as caught:
        scenario.with_gateways(1)
    assert str(caught.value) == "a gateway kill names gateway-2, but only gateway run (1 gateway)"


@pytest.mark.parametrize(
    ("extra", "where", "problem"),
    [
        ("gateways: 0\n", "gateways", "must be at least 1, got 0"),
        ("gateways: 9\n", "gateways", "must be at most 8, got 9"),
        ("gateways: two\n", "gateways", "expected a whole number, got the string 'two'"),
        (
            "gateway_kill: [{every_s: 10, restart_after: 1}]\n",
            "gateway_kill[0].restart_after",
            "unknown field (known here: every_s, from_s, gateway, restart_after_s, until_s)",
        ),
        (
            "gateway_kill: [{restart_after_s: 1}]\n",
            "gateway_kill[0].every_s",
            "is required (a number)",
        ),
        (
            "gateway_kill: [{every_s: 10}]\n",
            "gateway_kill[0].restart_after_s",
            "is required (a number)",
        ),
        (
            "gateway_kill: [{every_s: 10, restart_after_s: 10}]\n",
            "gateway_kill[0].restart_after_s",
            "must be shorter than every_s (10 s): the gateway is started again before the "
            "next kill, got 10",
        ),
        (
            "gateway_kill: [{every_s: 10, restart_after_s: [2, 1]}]\n",
            "gateway_kill[0].restart_after_s",
            "the longest (1 s) is shorter than the shortest (2 s)",
        ),
        (
            "gateway_kill: [{every_s: 10, restart_after_s: [1, 2, 3]}]\n",
            "gateway_kill[0].restart_after_s",
            "expected a number or [shortest, longest], got 3 items",
        ),
        (
            "gateway_kill: [{every_s: 10, restart_after_s: [0, 2]}]\n",
            "gateway_kill[0].restart_after_s[0]",
            "must be greater than 0, got 0",
        ),
        (
            "gateway_kill: [{every_s: 10, restart_after_s: 1, gateway: gateway-2}]\n",
            "gateway_kill[0].gateway",
            "unknown gateway 'gateway-2' (this scenario runs gateway; or round-robin)",
        ),
        (
            "gateway_kill: [{every_s: 10, restart_after_s: 1, from_s: 60}]\n",
            "gateway_kill[0].from_s",
            "starts at 60 s, after the arrival ends (60 s)",
        ),
        (
            "gateway_kill: [{every_s: 10, restart_after_s: 1, from_s: 30, until_s: 20}]\n",
            "gateway_kill[0].until_s",
            "must be after from_s (30 s), got 20",
        ),
        (
            "gateway_kill: [{every_s: 10, restart_after_s: 1, until_s: 61}]\n",
            "gateway_kill[0].until_s",
            "must be at most 60, got 61",
        ),
        (
            "gateway_kill: [{every_s: 10, restart_after_s: 1},"
            " {every_s: 7, restart_after_s: 1, gateway: gateway, from_s: 50}]\n",
            "gateway_kill[1]",
            "overlaps gateway_kill[0]: merge the two",
        ),
        (
            "agency_kill: [{agency: police, at_s: 1, duration_s: 2}]\n",
            "agency_kill[0].agency",
            "unknown agency 'police' (known: health, population, insurance)",
        ),
        (
            "agency_kill: [{agency: health, at_s: 1}]\n",
            "agency_kill[0].duration_s",
            "is required (a number)",
        ),
        (
            "agency_kill: [{agency: health, at_s: 70, duration_s: 2}]\n",
            "agency_kill[0].at_s",
            "starts at 70 s, after the arrival ends (60 s)",
        ),
        (
            "agency_kill: [{agency: health, at_s: 1, duration_s: 5}]\n"
            "outages: [{agency: health, at_s: 3, duration_s: 5}]\n",
            "agency_kill[0]",
            "overlaps outages[0] for health: the agency cannot be stopped twice",
        ),
        (
            "broker_restart: [{at_s: 10, down_s: 5}]\n",
            "broker_restart[0].down_s",
            "unknown field (known here: at_s, duration_s)",
        ),
        (
            "broker_restart: [{at_s: 10, duration_s: 0}]\n",
            "broker_restart[0].duration_s",
            "must be greater than 0, got 0",
        ),
        (
            "broker_restart: [{at_s: 10, duration_s: 5}, {at_s: 12, duration_s: 5}]\n",
            "broker_restart[1]",
            "overlaps broker_restart[0]",
        ),
        ("broker_restart: {at_s: 10}\n", "broker_restart", "expected a list, got a mapping"),
        (
            "database_restart: [{at_s: 10, duration_s: 5}, {at_s: 12, duration_s: 5}]\n",
            "database_restart[1]",
            "overlaps database_restart[0]",
        ),
        (
            "database_restart: [{at_s: 61, duration_s: 5}]\n",
            "database_restart[0].at_s",
            "starts at 61 s, after the arrival ends (60 s)",
        ),
    ],
)
def test_a_wrong_chaos_field_is_named_with_its_path_and_problem(
    tmp_path: Path, extra: str, where: str, problem: str
) -> None:
    path = write(tmp_path, BASE + extra)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert str(caught.value) == f"{path}: {where}: {problem}"


def test_the_chaos_preset_reproduces_the_testers_run() -> None:
    chaos = load_scenario(PRESETS / "chaos.yaml")
    assert chaos.gateways == 2
    assert 330 <= chaos.duration_s <= 390
    assert chaos.peak_rate == 50
    assert 16_000 <= chaos.expected_declarations <= 20_000
    assert chaos.population <= 50_000
    (kill,) = chaos.gateway_kills
    assert (kill.every_s, kill.restart_min_s, kill.restart_max_s, kill.gateway) == (
        10,
        1,
        2,
        "round-robin",
    )
    assert [(k.agency, k.duration_s) for k in chaos.agency_kills] == [
        ("insurance", 30),
        ("population", 30),
    ]
    assert chaos.agency_kills[0].end_s <= chaos.agency_kills[1].at_s
    assert len(chaos.broker_restarts) == 1
