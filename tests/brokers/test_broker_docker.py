"""`docker` without a Docker engine fails with one clear line; its configuration is unit-tested."""

from __future__ import annotations

import pytest

from brokers import BrokerKind, BrokerStartError, start_broker
from brokers import docker as docker_broker
from brokers.kafka_jars import kafka_version


def _engine_answers() -> bool:
    try:
        docker_broker.check_engine()
    except BrokerStartError:
        return False
    return True


@pytest.mark.skipif(_engine_answers(), reason="a Docker engine runs here")
def test_no_engine_gives_a_short_clear_error() -> None:
    with pytest.raises(BrokerStartError) as caught:
        start_broker(BrokerKind.DOCKER)
    message = str(caught.value)
    assert message.startswith("no Docker engine found")
    assert "--broker apache" in message
    assert "\n" not in message and len(message) < 400
    # Raised "from None": no chained docker-py/requests traceback under it.
    assert caught.value.__suppress_context__


class _FakeClient:
    def __init__(self, *, ping_error: Exception | None = None) -> None:
        self.ping_error = ping_error
        self.closed = False

    def ping(self) -> bool:
        if self.ping_error is not None:
            raise self.ping_error
        return True

    def close(self) -> None:
        self.closed = True


def test_engine_check_passes_when_the_engine_answers() -> None:
    client = _FakeClient()
    docker_broker.check_engine(lambda: client)
    assert client.closed


def test_engine_check_keeps_only_the_first_line_of_the_reason() -> None:
    client = _FakeClient(ping_error=ConnectionError("refused\n" + "traceback noise\n" * 50))
    with pytest.raises(BrokerStartError, match=r"\(refused\)$") as caught:
        docker_broker.check_engine(lambda: client)
    assert "noise" not in str(caught.value)
    assert client.closed


def test_container_settings_advertise_the_host_port() -> None:
    env = docker_broker.container_env(host="localhost", host_port=45678)
    assert env["KAFKA_ADVERTISED_LISTENERS"].startswith("EXTERNAL://localhost:45678,")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == "BROKER"


def test_image_follows_the_pinned_kafka(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(docker_broker.IMAGE_ENV_VAR, raising=False)
    assert docker_broker.image() == f"apache/kafka:{kafka_version()}"
    monkeypatch.setenv(docker_broker.IMAGE_ENV_VAR, "apache/kafka:latest")
    assert docker_broker.image() == "apache/kafka:latest"
