"""Where synthetic households live: the provinces of common.provinces.

Households are spread over provinces by population when the province table has
a `population` column, uniformly otherwise. The bundled table
(shared/data/provinces.csv) has only code and name, so the spread is uniform
unless LIENTHONG_PROVINCES_CSV points at a table with populations.
"""

from __future__ import annotations

import csv
import itertools
import os
import random
from dataclasses import dataclass
from pathlib import Path

from common.provinces import BUNDLED, provinces

POPULATION_COLUMN = "population"
# Share of citizens whose birth was registered in another province than the one
# they live in now (the first three digits of their ID number differ from the
# household's province). An assumption: the 2019 census counts some 6.4 million
# inter-provincial migrants over five years, lifetime moves are more.
REGISTERED_ELSEWHERE_SHARE = 0.12


@dataclass(frozen=True)
class Provinces:
    codes: tuple[str, ...]
    names: tuple[str, ...]
    cumulative_weights: tuple[float, ...]

    def pick(self, rng: random.Random) -> int:
        """The index of a province, weighted by population when known."""
        return rng.choices(range(len(self.codes)), cum_weights=self.cumulative_weights)[0]

    def pick_many(self, rng: random.Random, count: int) -> list[int]:
        return rng.choices(range(len(self.codes)), cum_weights=self.cumulative_weights, k=count)

    def name_of(self, code: str) -> str:
        return self.names[self.codes.index(code)]


def _populations(codes: tuple[str, ...]) -> list[float] | None:
    path = Path(os.environ.get("LIENTHONG_PROVINCES_CSV", BUNDLED))
    with path.open(encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if POPULATION_COLUMN not in (reader.fieldnames or []):
            return None
        by_code = {row["code"]: float(row[POPULATION_COLUMN]) for row in reader}
    return [by_code[code] for code in codes]


def load_provinces() -> Provinces:
    table = provinces()
    # Sorted, so the order never depends on how the table was written.
    codes = tuple(sorted(table))
    weights = _populations(codes) or [1.0] * len(codes)
    return Provinces(
        codes=codes,
        names=tuple(table[code] for code in codes),
        cumulative_weights=tuple(itertools.accumulate(weights)),
    )
