"""python -m services.insurance: the social security registry as its own process."""

from __future__ import annotations

import structlog

from common import event_loop
from common.database import DatabaseUnavailable
from common.database_url import redacted
from common.logging import configure_logging
from common.server import run_registry
from services.insurance.app import build
from services.insurance.base_salary import load_table
from services.insurance.config import load_config


def main() -> None:
    config = load_config()
    configure_logging(service=config.name, verbose=config.verbose)
    # A SQLite file or a PostgreSQL URL, its password never written out.
    structlog.get_logger("store").info("opening", database=redacted(config.database))
    try:
        # Read before listening: a broken table must stop the start, not a settlement.
        base_salaries = load_table()
    except (OSError, ValueError) as error:
        raise SystemExit(f"cannot read the base salary table: {error}") from None
    try:
        bindings, store = build(
            config.database, base_salaries=base_salaries, clock_tolerance=config.clock_tolerance
        )
    except DatabaseUnavailable as error:
        raise SystemExit(f"cannot start: {error}") from None
    event_loop.run(
        run_registry(
            bindings,
            process=config.name,
            host=config.host,
            port=config.port,
            grace_seconds=config.grace_seconds,
            on_stopped=store.close,
        )
    )


if __name__ == "__main__":
    main()
