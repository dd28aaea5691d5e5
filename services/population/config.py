"""Settings of the population registry, from LIENTHONG_POPULATION_* variables
and LIENTHONG_DEATH_DECLARATION_DAYS."""

from __future__ import annotations

from dataclasses import dataclass

from common.config import RegistryConfig, env_int
from services.population.rules import DEFAULT_DEATH_DECLARATION_DAYS

DEATH_DECLARATION_DAYS_VARIABLE = "LIENTHONG_DEATH_DECLARATION_DAYS"


@dataclass(frozen=True)
class PopulationConfig:
    registry: RegistryConfig
    # Law on Civil Status 2014 art. 33(1); see services.population.rules.
    death_declaration_days: int


def load_config() -> PopulationConfig:
    days = env_int(DEATH_DECLARATION_DAYS_VARIABLE, DEFAULT_DEATH_DECLARATION_DAYS)
    if days < 0:
        raise SystemExit(f"{DEATH_DECLARATION_DAYS_VARIABLE} must not be negative, got {days}")
    return PopulationConfig(
        registry=RegistryConfig.for_agency("population"),
        death_declaration_days=days,
    )
