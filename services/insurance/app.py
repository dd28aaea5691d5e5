"""Wire the social security registry together: store, rules, servicer, server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from common.clock import civil_latest_past_day, civil_today
from common.config import DEFAULT_CLOCK_TOLERANCE_SECONDS
from common.database import Connection, Database
from common.server import ServiceBinding
from lienthong.insurance.v1 import insurance_pb2, insurance_pb2_grpc
from services.insurance.base_salary import BaseSalaryTable, load_table
from services.insurance.registry import InsuranceRegistry, seed_rows
from services.insurance.servicer import InsuranceRegistryServicer
from services.insurance.store import InsuranceStore, open_store

SERVICE_NAME = insurance_pb2.DESCRIPTOR.services_by_name["InsuranceRegistryService"].full_name


def build(
    database: Path | str,
    today: Callable[[], dt.date] | None = None,
    base_salaries: BaseSalaryTable | None = None,
    clock_tolerance: dt.timedelta = dt.timedelta(seconds=DEFAULT_CLOCK_TOLERANCE_SECONDS),
) -> tuple[list[ServiceBinding], Database]:
    """`database`: a SQLite path or a PostgreSQL URL. `base_salaries` None
    reads the table this deployment configured (LIENTHONG_BASE_SALARY_CSV or
    the bundled one). `today` given (tests): it is also the latest day a
    date may name."""
    latest = today if today is not None else civil_latest_past_day(clock_tolerance)
    today = today or civil_today()
    table = base_salaries if base_salaries is not None else load_table()
    store = open_store(database)

    def registry(conn: Connection) -> InsuranceRegistry:
        return InsuranceRegistry(InsuranceStore(conn), table, today, latest)

    def rows(batch: insurance_pb2.SeedParticipantsRequest, index: int) -> list[tuple[object, ...]]:
        return seed_rows(batch, index, latest())

    binding = ServiceBinding(
        InsuranceRegistryServicer(store, registry, rows),
        insurance_pb2_grpc.add_InsuranceRegistryServiceServicer_to_server,
        SERVICE_NAME,
    )
    return [binding], store
