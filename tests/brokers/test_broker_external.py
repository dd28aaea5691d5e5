"""`external` points at a broker somebody else runs: here, the session's Tansu."""

from __future__ import annotations

import pytest

from brokers import BrokerKind, BrokerStartError, RunningBroker, answers, start_broker
from brokers._process import free_port


@pytest.mark.kafka
def test_external_uses_the_bootstrap_servers_variable(
    embedded_broker: RunningBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", embedded_broker.bootstrap_servers)
    with start_broker(BrokerKind.EXTERNAL) as external:
        assert external.kind is BrokerKind.EXTERNAL
        assert external.bootstrap_servers == embedded_broker.bootstrap_servers
        # Asked of the broker itself: Tansu refuses producer ids.
        assert external.supports_idempotence is False
    # Stopping an external broker leaves it running.
    assert answers(embedded_broker.bootstrap_servers)


def test_external_without_the_variable_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    with pytest.raises(BrokerStartError, match="KAFKA_BOOTSTRAP_SERVERS"):
        start_broker("external")


def test_external_that_does_not_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    nobody = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", nobody)
    with pytest.raises(BrokerStartError, match=rf"did not answer .* at {nobody} within 0.5 s"):
        start_broker("external", timeout=0.5)


def test_external_with_a_malformed_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "localhost")
    with pytest.raises(BrokerStartError, match="want host:port"):
        start_broker("external", timeout=0.5)
