"""Wire the hospital registry together: store, rules, servicer, server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from common.clock import civil_latest_past_day, civil_today
from common.config import DEFAULT_CLOCK_TOLERANCE_SECONDS
from common.database import Connection, Database
from common.server import ServiceBinding
from lienthong.health.v1 import health_pb2, health_pb2_grpc
from services.health.registry import HospitalRegistry, SeedRows, seed_rows
from services.health.servicer import HealthRegistryServicer
from services.health.store import HospitalStore, open_store

SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["HealthRegistryService"].full_name


def build(
    database: Path | str,
    today: Callable[[], dt.date] | None = None,
    clock_tolerance: dt.timedelta = dt.timedelta(seconds=DEFAULT_CLOCK_TOLERANCE_SECONDS),
) -> tuple[list[ServiceBinding], Database]:
    """`database`: a SQLite path or a PostgreSQL URL. `today` given (tests):
    it is also the latest day a date may name."""
    latest = today if today is not None else civil_latest_past_day(clock_tolerance)
    today = today or civil_today()
    store = open_store(database)

    def registry(conn: Connection) -> HospitalRegistry:
        return HospitalRegistry(HospitalStore(conn), today, latest)

    def rows(batch: health_pb2.SeedHospitalRecordsRequest, index: int) -> SeedRows:
        return seed_rows(batch, index, latest())

    binding = ServiceBinding(
        HealthRegistryServicer(store, registry, rows),
        health_pb2_grpc.add_HealthRegistryServiceServicer_to_server,
        SERVICE_NAME,
    )
    return [binding], store
