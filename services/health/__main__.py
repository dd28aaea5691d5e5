"""python -m services.health: the hospital registry as its own process."""

from __future__ import annotations

import asyncio

from common.logging import configure_logging
from common.server import run_registry
from services.health.app import build
from services.health.config import load_config


def main() -> None:
    config = load_config()
    configure_logging(service=config.name, verbose=config.verbose)
    bindings, store = build(config.database, clock_tolerance=config.clock_tolerance)
    asyncio.run(
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
