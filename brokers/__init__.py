"""The Kafka broker launcher used by the CLI (``--broker``) and by the tests.

    with start_broker(BrokerKind.EMBEDDED) as broker:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers,
                                    enable_idempotence=broker.supports_idempotence)

``start_broker`` returns once the broker answers Kafka metadata requests, or
raises BrokerStartError with a message for a user (and the tail of the
broker's log). See brokers/README.md for the kinds.
"""

from __future__ import annotations

import time
from pathlib import Path

import structlog

from brokers import apache, docker, embedded, external
from brokers._core import BrokerKind, BrokerStartError, RunningBroker
from brokers._ready import answers, supports_idempotence

__all__ = [
    "DEFAULT_BROKER",
    "BrokerKind",
    "BrokerStartError",
    "RunningBroker",
    "answers",
    "start_broker",
    "supports_idempotence",
]

DEFAULT_BROKER = BrokerKind.EMBEDDED

log = structlog.get_logger(__name__)


def start_broker(
    kind: BrokerKind | str = DEFAULT_BROKER,
    *,
    data_dir: Path | None = None,
    port: int | None = None,
    timeout: float | None = None,
) -> RunningBroker:
    """Start (or, for ``external``, check) a broker and return once it answers.

    data_dir: where the broker keeps its logs (and apache its data, reused if
        already formatted); default a fresh temporary folder removed by stop().
    port: the client port on 127.0.0.1 (embedded, apache); default a free one.
    timeout: seconds to wait for the broker to answer; default per kind.
    """
    try:
        kind = BrokerKind(kind)
    except ValueError:
        choices = ", ".join(k.value for k in BrokerKind)
        raise BrokerStartError(f"unknown broker kind {kind!r}; choose one of {choices}") from None
    if kind in (BrokerKind.EXTERNAL, BrokerKind.DOCKER) and (
        data_dir is not None or port is not None
    ):
        raise BrokerStartError(f"--broker {kind.value} takes neither a data dir nor a port")

    started = time.monotonic()
    if kind is BrokerKind.EMBEDDED:
        broker = embedded.start(data_dir=data_dir, port=port, timeout=timeout)
    elif kind is BrokerKind.APACHE:
        broker = apache.start(data_dir=data_dir, port=port, timeout=timeout)
    elif kind is BrokerKind.EXTERNAL:
        broker = external.start(timeout=timeout)
    else:
        broker = docker.start(timeout=timeout)
    log.info(
        "broker started",
        kind=kind.value,
        bootstrap_servers=broker.bootstrap_servers,
        seconds=round(time.monotonic() - started, 2),
    )
    return broker
