"""Scenario files: the presets load, every mistake is named by file, field and problem."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from scenarios.faults import BIRTH_FAULTS, DEATH_FAULTS, FAULT_KINDS
from scenarios.scenario import (
    AddedLatency,
    AgencyOutage,
    Phase,
    Scenario,
    ScenarioError,
    load_scenario,
)

PRESETS = Path(__file__).resolve().parents[2] / "scenarios"

MINIMAL = """
seed: 1
population: 10
arrival:
  - {duration_s: 10, rate: 1}
"""


def write(tmp_path: Path, text: str, name: str = "test.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_smoke_preset_is_small_and_has_every_fault() -> None:
    smoke = load_scenario(PRESETS / "smoke.yaml")
    assert smoke.name == "smoke"
    assert smoke.population <= 5_000
    assert smoke.duration_s <= 30
    assert 2 <= smoke.peak_rate <= 5
    assert set(smoke.faults) == set(FAULT_KINDS)
    assert smoke.outages == () and smoke.latencies == ()


def test_the_peak_hour_preset_ramps_and_breaks_insurance_and_health() -> None:
    peak = load_scenario(PRESETS / "peak-hour.yaml")
    rates = [(p.rate_from, p.rate_to) for p in peak.arrival]
    assert rates[0][0] < rates[0][1] and rates[-1][0] > rates[-1][1]  # up, then down
    assert [o.agency for o in peak.outages] == ["insurance"]
    assert [a.agency for a in peak.latencies] == ["health"]
    # 5 % of births and 5 % of deaths carry a fault (shares are of what they apply to).
    births = sum(peak.faults[kind] for kind in BIRTH_FAULTS)
    deaths = sum(peak.faults[kind] for kind in DEATH_FAULTS)
    assert births == pytest.approx(0.05) and deaths == pytest.approx(0.05)


def test_the_national_year_preset_is_a_sampled_year() -> None:
    year = load_scenario(PRESETS / "national-year.yaml")
    assert len(year.arrival) == 12
    assert year.duration_s == pytest.approx(600)
    assert year.expected_declarations == pytest.approx((1_400_000 + 650_000) * 0.02)
    assert year.births_share == pytest.approx(1.4 / 2.05)
    assert year.population == 200_000


def test_a_minimal_file_gets_the_defaults(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, MINIMAL, "tiny.yaml"))
    assert scenario.name == "tiny"
    assert scenario.description == ""
    assert scenario.arrival == (Phase(10, 1, 1),)
    assert scenario.faults == {}
    assert scenario.drain_timeout_s > 0
    assert 0 < scenario.births_share < 1


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        (MINIMAL + "rate_limit: 3\n", "rate_limit", "unknown field"),
        (MINIMAL.replace("arrival:", "arival:"), "arival", "unknown field"),
        (
            MINIMAL + "outages: [{agency: health, at_s: 1, duration_s: 2, latency_ms: 5}]\n",
            "outages[0].latency_ms",
            "unknown field",
        ),
        (
            MINIMAL.replace("rate: 1", "rate_from: 1, rate_too: 2"),
            "arrival[0].rate_too",
            "unknown field",
        ),
        (
            MINIMAL + "  - {duration_s: 5, rate_from: 1, rate_to: -5}\n",
            "arrival[1].rate_to",
            "at least 0",
        ),
        (MINIMAL.replace("rate: 1", "rate: fast"), "arrival[0].rate", "expected a number"),
        (MINIMAL.replace("rate: 1", "rate: 1, rate_to: 2"), "arrival[0].rate_to", "either"),
        (MINIMAL.replace("duration_s: 10", "duration_s: 0"), "arrival[0].duration_s", "greater"),
        (MINIMAL.replace("rate: 1", "rate: 0"), "arrival", "sends nothing"),
        (MINIMAL.replace("seed: 1", "seed: 1.5"), "seed", "whole number"),
        (MINIMAL.replace("population: 10\n", ""), "population", "required"),
        (MINIMAL + "faults: {mother_id_mismatsh: 0.1}\n", "faults.mother_id_mismatsh", "known"),
        (MINIMAL + "faults: {missing_fields: 5%}\n", "faults.missing_fields", "0.05"),
        (MINIMAL + "faults: {missing_fields: 1.5}\n", "faults.missing_fields", "at most 1"),
        (
            MINIMAL + "faults: {mother_id_mismatch: 0.6, missing_fields: 0.5}\n",
            "faults",
            "must not exceed 1",
        ),
        (MINIMAL + "mix: {birth: 0.5}\n", "mix.birth", "unknown field"),
        (
            MINIMAL + "outages: [{agency: police, at_s: 1, duration_s: 2}]\n",
            "outages[0].agency",
            "unknown agency",
        ),
        (
            MINIMAL + "outages: [{agency: health, at_s: 11, duration_s: 2}]\n",
            "outages[0].at_s",
            "after the arrival ends",
        ),
        (
            MINIMAL + "outages: [{agency: health, at_s: 1, duration_s: 5},"
            " {agency: health, at_s: 4, duration_s: 2}]\n",
            "outages[1]",
            "overlaps outages[0]",
        ),
        (
            MINIMAL + "added_latency: [{agency: health, at_s: 1, duration_s: 5}]\n",
            "added_latency[0].latency_ms",
            "required",
        ),
        (MINIMAL + "drain_timeout_s: -1\n", "drain_timeout_s", "greater than 0"),
        (
            MINIMAL + "year: {births: 10, deaths: 5, sample: 1, replay_in_s: 12}\n",
            "arrival",
            "together with `year`",
        ),
        ("- just\n- a list\n", "", "mapping"),
        ("seed: [unclosed\n", "", "not valid YAML"),
    ],
)
def test_a_wrong_field_is_named_with_its_path(
    tmp_path: Path, text: str, where: str, words: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    assert caught.value.path == where, message
    assert words in message, message


def test_a_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "nowhere.yaml")


def test_a_year_block_computes_monthly_rates(tmp_path: Path) -> None:
    text = """
seed: 1
population: 10
year:
  births: 1_200
  deaths: 600
  sample: 0.5
  replay_in_s: 120
  monthly_weights: [2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]
"""
    scenario = load_scenario(write(tmp_path, text))
    assert scenario.expected_declarations == pytest.approx(900)
    assert scenario.births_share == pytest.approx(2 / 3)
    assert [p.duration_s for p in scenario.arrival] == [10.0] * 12
    assert scenario.arrival[0].rate_from == pytest.approx(2 * scenario.arrival[1].rate_from)
    assert scenario.arrival[-1].rate_from == 0


def test_with_rate_keeps_the_shape_and_sets_the_peak() -> None:
    scenario = Scenario.constant(1, 10)
    ramp = dataclasses.replace(scenario, arrival=(Phase(10, 2, 8), Phase(10, 4)))
    scaled = ramp.with_rate(16)
    assert scaled.peak_rate == pytest.approx(16)
    assert [(p.rate_from, p.rate_to) for p in scaled.arrival] == [(4, 16), (8, 8)]
    assert scaled.duration_s == ramp.duration_s
    with pytest.raises(ValueError, match="positive"):
        ramp.with_rate(0)


def test_with_duration_scales_phases_and_fault_windows() -> None:
    base = Scenario.constant(5, 100)
    scenario = dataclasses.replace(
        base,
        arrival=(Phase(40, 1, 5), Phase(60, 5)),
        outages=(AgencyOutage("insurance", 50, 10),),
        latencies=(AddedLatency("health", 20, 30, 150),),
    )
    half = scenario.with_duration(50)
    assert half.duration_s == pytest.approx(50)
    assert [p.duration_s for p in half.arrival] == [20, 30]
    assert half.outages == (AgencyOutage("insurance", 25, 5),)
    assert half.latencies == (AddedLatency("health", 10, 15, 150),)
    assert half.peak_rate == scenario.peak_rate
    assert half.expected_declarations == pytest.approx(scenario.expected_declarations / 2)


def test_constant_is_one_flat_phase_without_faults() -> None:
    bench = Scenario.constant(50, 60, seed=3)
    assert bench.arrival == (Phase(60, 50, 50),)
    assert bench.expected_declarations == 3000
    assert bench.duration_s == 60
    assert bench.faults == {} and bench.outages == () and bench.latencies == ()
    assert bench.rate_at(30) == 50 and bench.rate_at(60) == 0


def test_a_scenario_cannot_be_changed() -> None:
    scenario = Scenario.constant(1, 1)
    with pytest.raises(AttributeError):
        scenario.seed = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        scenario.faults["missing_fields"] = 0.5  # type: ignore[index]


def test_a_phase_ramps_linearly() -> None:
    phase = Phase(10, 0, 10)
    assert phase.rate_at(5) == 5
    assert phase.expected == 50
    assert Phase(4, 3).rate_to == 3
    assert math.isclose(Phase(4, 3).expected, 12)
    with pytest.raises(ValueError, match="negative"):
        Phase(4, 3, -1)
