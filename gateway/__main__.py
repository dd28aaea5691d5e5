"""python -m gateway: one gateway process (API, saga worker, step executor)."""

from __future__ import annotations

from common import event_loop
from common.logging import configure_logging
from common.switch_interval import hand_over_often
from gateway.app import run_gateway
from gateway.config import GatewayConfig


def main() -> None:
    hand_over_often()  # its saga store runs on a thread beside the loop
    config = GatewayConfig.from_env()
    configure_logging(service="gateway", verbose=config.verbose)
    event_loop.run(run_gateway(config))


if __name__ == "__main__":
    main()
