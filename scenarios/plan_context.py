"""What every planned declaration is drawn from."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Set
from dataclasses import dataclass

from scenarios.numbering import DocumentNumbers
from scenarios.population import SyntheticPopulation


@dataclass(frozen=True)
class PlanContext:
    rng: random.Random
    population: SyntheticPopulation
    # Citizens who die in the plan: never a mother, a father or a declarant.
    excluded: Set[int]
    docs: DocumentNumbers
    today: dt.date  # the day the declarations are submitted
    # Share of deaths claiming the funeral allowance; None: by eligibility
    # (scenarios/deaths.py, CLAIM_IF_ELIGIBLE_SHARE and CLAIM_IF_NOT_ELIGIBLE_SHARE).
    funeral_claim_share: float | None = None
