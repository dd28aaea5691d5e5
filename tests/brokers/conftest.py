"""One broker of each kind per test session: Kafka's JVM takes seconds to start."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from brokers import BrokerKind, RunningBroker, start_broker


@pytest.fixture(scope="session")
def embedded_broker() -> Iterator[RunningBroker]:
    with start_broker(BrokerKind.EMBEDDED) as broker:
        yield broker


@pytest.fixture(scope="session")
def apache_broker() -> Iterator[RunningBroker]:
    # The first start on a machine fetches Kafka's jars (cached in ~/.cache/lienthong).
    with start_broker(BrokerKind.APACHE) as broker:
        yield broker


@pytest.fixture(params=[BrokerKind.EMBEDDED.value, BrokerKind.APACHE.value])
def broker(request: pytest.FixtureRequest) -> RunningBroker:
    """Each test using this runs once on Tansu and once on Apache Kafka."""
    running: RunningBroker = request.getfixturevalue(f"{request.param}_broker")
    return running
