"""Wire the population registry together: store, rules, servicer, server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from common.clock import civil_latest_past_day, civil_today
from common.config import DEFAULT_CLOCK_TOLERANCE_SECONDS
from common.database import Connection, Database
from common.server import ServiceBinding
from lienthong.population.v1 import population_pb2, population_pb2_grpc
from services.population.registry import PopulationRegistry
from services.population.rules import DEFAULT_DEATH_DECLARATION_DAYS
from services.population.seed import SeedBatch, batch_rows
from services.population.servicer import PopulationRegistryServicer
from services.population.store import PopulationStore, open_store

SERVICE_NAME = population_pb2.DESCRIPTOR.services_by_name["PopulationRegistryService"].full_name


def build(
    database: Path | str,
    today: Callable[[], dt.date] | None = None,
    death_declaration_days: int = DEFAULT_DEATH_DECLARATION_DAYS,
    clock_tolerance: dt.timedelta = dt.timedelta(seconds=DEFAULT_CLOCK_TOLERANCE_SECONDS),
) -> tuple[list[ServiceBinding], Database]:
    """`database`: a SQLite path or a PostgreSQL URL. `today` given (tests):
    it is also the latest day a date may name."""
    latest = today if today is not None else civil_latest_past_day(clock_tolerance)
    today = today or civil_today()
    store = open_store(database)

    def registry(conn: Connection) -> PopulationRegistry:
        return PopulationRegistry(PopulationStore(conn), today, death_declaration_days, latest)

    def seed_rows(batch: population_pb2.SeedPopulationRequest, index: int) -> SeedBatch:
        return batch_rows(batch, index, latest())

    binding = ServiceBinding(
        PopulationRegistryServicer(store, registry, seed_rows),
        population_pb2_grpc.add_PopulationRegistryServiceServicer_to_server,
        SERVICE_NAME,
    )
    return [binding], store
