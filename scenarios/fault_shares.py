"""Which planned declarations carry which fault, from a scenario's shares.

A share is the fraction of the declarations the fault can apply to: a
birth-only fault (scenarios.faults.BIRTH_FAULTS) of the births, a death-only
one of the deaths, one that fits both of each. Counts are exact (largest
remainder), not drawn one by one, so a small plan still gets its faults.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence

from scenarios.faults import (
    ALREADY_DEAD,
    BIRTH_FAULTS,
    DEATH_FAULTS,
    DUPLICATE_SUBMISSION,
    FAULT_KINDS,
    LATE_BIRTH_DECLARATION,
    MISSING_FIELDS,
    MOTHER_ID_MISMATCH,
    UNKNOWN_BIRTH_CERTIFICATE,
)

COMPLETED = "COMPLETED"
COMPLETED_WITH_REFUSALS = "COMPLETED_WITH_REFUSALS"
REJECTED = "REJECTED"
NEEDS_SUPPLEMENT = "NEEDS_SUPPLEMENT"

# What the gateway is expected to make of each fault: (state, agency, reason).
# A duplicate is the same request again under the same idempotency key: one
# dossier, which completes, and the agencies act once.
EXPECTED: Mapping[str, tuple[str, str | None, str | None]] = {
    MOTHER_ID_MISMATCH: (REJECTED, "health", "MOTHER_ID_MISMATCH"),
    UNKNOWN_BIRTH_CERTIFICATE: (REJECTED, "health", "BIRTH_CERTIFICATE_NOT_FOUND"),
    ALREADY_DEAD: (REJECTED, "population", "ALREADY_DEAD"),
    DUPLICATE_SUBMISSION: (COMPLETED, None, None),
    MISSING_FIELDS: (NEEDS_SUPPLEMENT, None, None),
    LATE_BIRTH_DECLARATION: (COMPLETED_WITH_REFUSALS, "insurance", "CHILD_TOO_OLD"),
}


def check_shares(faults: Mapping[str, float]) -> dict[str, float]:
    """The shares by fault kind, in FAULT_KINDS order; ValueError says what is wrong."""
    unknown = sorted(kind for kind in faults if kind not in FAULT_KINDS)
    if unknown:
        raise ValueError(
            f"unknown fault kind(s) {', '.join(unknown)}; known: {', '.join(FAULT_KINDS)}"
        )
    checked: dict[str, float] = {}
    for kind in FAULT_KINDS:
        share = faults.get(kind, 0.0)
        if isinstance(share, bool) or not isinstance(share, int | float):
            raise ValueError(f"the share of {kind} must be a number, not {share!r}")
        if not 0.0 <= share <= 1.0:  # also refuses NaN
            raise ValueError(f"the share of {kind} must be between 0 and 1, not {share}")
        checked[kind] = float(share)
    total = math.fsum(checked.values())
    if total > 1.0 + 1e-9:
        raise ValueError(f"the fault shares add up to {total:g}; they must not exceed 1")
    return checked


def counts(shares: Mapping[str, float], kinds: Sequence[str], declarations: int) -> dict[str, int]:
    """How many of `declarations` get each of `kinds`, rounded by largest remainder."""
    exact = {kind: shares[kind] * declarations for kind in kinds}
    wanted = min(declarations, round(math.fsum(exact.values())))
    result = {kind: math.floor(value) for kind, value in exact.items()}
    by_remainder = sorted(kinds, key=lambda kind: (result[kind] - exact[kind], kinds.index(kind)))
    for kind in by_remainder[: wanted - sum(result.values())]:
        result[kind] += 1
    return result


def assign(
    rng: random.Random, shares: Mapping[str, float], kinds: Sequence[str], declarations: int
) -> list[str | None]:
    """The fault of each of `declarations` (None for none), in random positions."""
    faults: list[str | None] = []
    for kind, count in counts(shares, kinds, declarations).items():
        faults.extend([kind] * count)
    faults.extend([None] * (declarations - len(faults)))
    rng.shuffle(faults)
    return faults


def birth_faults(rng: random.Random, shares: Mapping[str, float], births: int) -> list[str | None]:
    return assign(rng, shares, BIRTH_FAULTS, births)


def death_faults(rng: random.Random, shares: Mapping[str, float], deaths: int) -> list[str | None]:
    return assign(rng, shares, DEATH_FAULTS, deaths)
