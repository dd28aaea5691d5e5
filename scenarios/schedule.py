"""When each declaration is sent: an inhomogeneous Poisson process over the phases.

The replay is an open model: declaration i goes out at `offsets[i]` seconds
from the start whatever the earlier ones are doing, so a slow system sees the
queue it causes instead of hiding it (no coordinated omission). The schedule is
fixed before the first request, from the scenario's seed alone.

Method: time change. Arrivals of a unit-rate Poisson process (cumulative
exponential gaps) are points on the integrated-rate axis Λ; mapping each back
through Λ⁻¹ gives arrivals of the process with rate r(t). Λ is a quadratic per
linear-ramp phase, so the inverse is exact and no arrival is thrown away (as
thinning would).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

from scenarios.scenario import Phase, Scenario

__all__ = ["arrival_offsets", "count_tolerance", "expected_count", "iter_offsets"]


def expected_count(scenario: Scenario) -> float:
    """The mean number of arrivals: the integral of the rate over the whole arrival."""
    return scenario.expected_declarations


def count_tolerance(scenario: Scenario, sigmas: float = 4.0) -> float:
    """How far a run's count may stray from the mean by chance (Poisson: σ = √mean)."""
    return sigmas * math.sqrt(expected_count(scenario))


def _rng(seed: int) -> random.Random:
    # Its own stream, derived from the seed: the generator also seeds from
    # scenario.seed, and sharing its stream would tie each arrival gap to the
    # person declared at that moment.
    return random.Random(f"lienthong.schedule/{seed}")


def _time_in_phase(phase: Phase, area: float) -> float:
    """Seconds into `phase` at which the integrated rate reaches `area`.

    Λ(t) = a·t + k·t²/2 with a = rate_from, k = slope; solved in the form
    2·area / (a + √(a² + 2·k·area)), which stays accurate when k is near 0.
    """
    a = phase.rate_from
    k = (phase.rate_to - phase.rate_from) / phase.duration_s
    root = math.sqrt(max(a * a + 2.0 * k * area, 0.0))
    t = 2.0 * area / (a + root) if a + root > 0 else 0.0
    return min(max(t, 0.0), phase.duration_s)


def iter_offsets(scenario: Scenario) -> Iterator[float]:
    """The offsets one by one, in order (for runs too long to hold in a list)."""
    rng = _rng(scenario.seed)
    start = 0.0
    target = rng.expovariate(1.0)  # the next arrival, on the integrated-rate axis
    passed = 0.0  # integrated rate of the phases already behind
    last = 0.0
    for phase in scenario.arrival:
        area = phase.expected
        while target < passed + area:
            # max(): float rounding must never put an arrival before the previous one.
            last = max(last, start + _time_in_phase(phase, target - passed))
            yield last
            target += rng.expovariate(1.0)
        passed += area
        start += phase.duration_s


def arrival_offsets(scenario: Scenario) -> list[float]:
    """Seconds from the start at which each declaration is sent; sorted, deterministic."""
    return list(iter_offsets(scenario))
