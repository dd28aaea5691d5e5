"""Wire the population registry together: store, rules, servicer, server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from common.clock import civil_today
from common.server import ServiceBinding
from lienthong.population.v1 import population_pb2, population_pb2_grpc
from services.population.registry import PopulationRegistry
from services.population.rules import DEFAULT_DEATH_DECLARATION_DAYS
from services.population.servicer import PopulationRegistryServicer
from services.population.store import PopulationStore

SERVICE_NAME = population_pb2.DESCRIPTOR.services_by_name["PopulationRegistryService"].full_name


def build(
    database: Path | str,
    today: Callable[[], dt.date] | None = None,
    death_declaration_days: int = DEFAULT_DEATH_DECLARATION_DAYS,
) -> tuple[list[ServiceBinding], PopulationStore]:
    today = today or civil_today()
    store = PopulationStore(database)
    servicer = PopulationRegistryServicer(PopulationRegistry(store, today, death_declaration_days))
    binding = ServiceBinding(
        servicer,
        population_pb2_grpc.add_PopulationRegistryServiceServicer_to_server,
        SERVICE_NAME,
    )
    return [binding], store
