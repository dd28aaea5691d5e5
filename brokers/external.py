"""The ``external`` broker: one somebody else runs, e.g. the docker-compose Kafka.

Nothing is started or stopped; the launcher only checks that
KAFKA_BOOTSTRAP_SERVERS answers, and asks it whether it hands out producer ids
(so a Tansu behind the variable is reported as not supporting idempotence).
"""

from __future__ import annotations

import os

from brokers._core import BrokerKind, BrokerStartError, RunningBroker
from brokers._ready import supports_idempotence, wait_until_answers

ENV_VAR = "KAFKA_BOOTSTRAP_SERVERS"
START_TIMEOUT_SECONDS = 15.0


def start(*, timeout: float | None = None) -> RunningBroker:
    bootstrap = os.environ.get(ENV_VAR, "").strip()
    if not bootstrap:
        raise BrokerStartError(
            f"--broker external needs {ENV_VAR} (host:port[,host:port...]), "
            "e.g. KAFKA_BOOTSTRAP_SERVERS=localhost:9092 for the docker-compose Kafka"
        )
    wait_until_answers(
        bootstrap,
        timeout=timeout or START_TIMEOUT_SECONDS,
        what=f"the external Kafka ({ENV_VAR})",
    )
    return RunningBroker(
        kind=BrokerKind.EXTERNAL,
        bootstrap_servers=bootstrap,
        supports_idempotence=supports_idempotence(bootstrap),
    )
