"""Arrival times: seeded, sorted, as many as the rate's integral, shaped like the ramps."""

from __future__ import annotations

import dataclasses
import math

import pytest

from scenarios.scenario import Phase, Scenario
from scenarios.schedule import arrival_offsets, count_tolerance, expected_count, iter_offsets


def shaped(*phases: Phase, seed: int = 7) -> Scenario:
    return dataclasses.replace(Scenario.constant(1, 1, seed=seed), arrival=phases)


def test_the_same_seed_gives_the_same_offsets() -> None:
    scenario = shaped(Phase(30, 1, 20), Phase(30, 20))
    assert arrival_offsets(scenario) == arrival_offsets(scenario)
    assert arrival_offsets(scenario) == list(iter_offsets(scenario))
    assert arrival_offsets(scenario) != arrival_offsets(dataclasses.replace(scenario, seed=8))


def test_offsets_are_sorted_and_inside_the_arrival() -> None:
    scenario = shaped(Phase(10, 50, 0), Phase(5, 0), Phase(10, 0, 50))
    offsets = arrival_offsets(scenario)
    assert offsets == sorted(offsets)
    assert offsets[0] >= 0 and offsets[-1] <= scenario.duration_s


@pytest.mark.parametrize("seed", range(5))
def test_the_count_is_the_integral_of_the_rate_within_chance(seed: int) -> None:
    scenario = shaped(Phase(60, 5, 50), Phase(60, 50), Phase(30, 50, 0), seed=seed)
    assert expected_count(scenario) == pytest.approx(30 * 55 + 3000 + 750)
    # 4 σ: a false alarm about once in 16,000 runs; the seeds are fixed anyway.
    assert abs(len(arrival_offsets(scenario)) - expected_count(scenario)) <= count_tolerance(
        scenario
    )


def test_a_ramp_sends_more_in_its_busy_half() -> None:
    # Rate 0 → 100 over 100 s: the second half carries 3/4 of the 5,000 arrivals.
    scenario = shaped(Phase(100, 0, 100))
    offsets = arrival_offsets(scenario)
    late = sum(1 for t in offsets if t >= 50)
    assert late / len(offsets) == pytest.approx(0.75, abs=0.03)
    # And a ramp down mirrors it.
    down = arrival_offsets(shaped(Phase(100, 100, 0)))
    early = sum(1 for t in down if t < 50)
    assert early / len(down) == pytest.approx(0.75, abs=0.03)


def test_a_flat_phase_spreads_evenly() -> None:
    offsets = arrival_offsets(shaped(Phase(100, 40)))
    deciles = [0] * 10
    for t in offsets:
        deciles[min(int(t // 10), 9)] += 1
    for count in deciles:
        assert abs(count - 400) <= 4 * math.sqrt(400)


def test_a_zero_rate_phase_sends_nothing() -> None:
    scenario = shaped(Phase(10, 20), Phase(10, 0), Phase(10, 20))
    offsets = arrival_offsets(scenario)
    assert not [t for t in offsets if 10 < t < 20]
    assert [t for t in offsets if t < 10] and [t for t in offsets if t > 20]
    assert arrival_offsets(shaped(Phase(10, 0))) == []


def test_the_presets_offsets_are_quick_to_compute() -> None:
    # 41,000 offsets for the national year: the schedule must not dominate startup.
    scenario = shaped(*(Phase(50, 68) for _ in range(12)))
    assert len(arrival_offsets(scenario)) == pytest.approx(40_800, abs=1_000)
