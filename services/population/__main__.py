"""python -m services.population: the population registry as its own process."""

from __future__ import annotations

import structlog

from common import event_loop
from common.database import DatabaseUnavailable
from common.database_url import redacted
from common.logging import configure_logging
from common.server import run_registry
from services.population.app import build
from services.population.config import load_config


def main() -> None:
    config = load_config()
    registry = config.registry
    configure_logging(service=registry.name, verbose=registry.verbose)
    structlog.get_logger("population").info("store", database=redacted(registry.database))
    try:
        bindings, store = build(
            registry.database,
            death_declaration_days=config.death_declaration_days,
            clock_tolerance=registry.clock_tolerance,
        )
    except DatabaseUnavailable as error:
        raise SystemExit(f"cannot start: {error}") from None
    event_loop.run(
        run_registry(
            bindings,
            process=registry.name,
            host=registry.host,
            port=registry.port,
            grace_seconds=registry.grace_seconds,
            on_stopped=store.close,
        )
    )


if __name__ == "__main__":
    main()
