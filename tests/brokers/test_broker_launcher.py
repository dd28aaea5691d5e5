"""The launcher's failure paths, with fake broker binaries: clear errors, no process left behind."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from brokers import BrokerKind, BrokerStartError, RunningBroker, answers, start_broker
from brokers import apache as apache_broker
from brokers._process import LOOPBACK, free_port
from tests.processes import alive


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_unknown_kind_lists_the_choices() -> None:
    with pytest.raises(BrokerStartError, match="choose one of embedded, apache, external, docker"):
        start_broker("redpanda")


def test_external_takes_no_port() -> None:
    with pytest.raises(BrokerStartError, match="takes neither"):
        start_broker(BrokerKind.EXTERNAL, port=9092)


def test_a_port_in_use_is_reported_before_starting() -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BrokerStartError, match=f"port {port} on 127.0.0.1 is already in use"):
            start_broker(BrokerKind.EMBEDDED, port=port)


def test_a_silent_broker_times_out_with_its_log_and_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "pid"
    fake = _script(
        tmp_path / "fake-tansu",
        f'echo "fake tansu: listening nowhere"\necho $$ > {pid_file}\nexec sleep 60\n',
    )
    monkeypatch.setenv("CALF_TANSU_BIN", str(fake))
    with pytest.raises(BrokerStartError) as caught:
        start_broker(BrokerKind.EMBEDDED, data_dir=tmp_path / "data", timeout=0.5)
    message = str(caught.value)
    assert "the Tansu broker did not answer Kafka metadata requests" in message
    assert "within 0.5 seconds" in message
    assert "fake tansu: listening nowhere" in message
    assert not alive(int(pid_file.read_text()))


def test_a_broker_that_exits_is_reported_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _script(tmp_path / "fake-tansu", 'echo "boom: no such storage engine" >&2\nexit 3\n')
    monkeypatch.setenv("CALF_TANSU_BIN", str(fake))
    with pytest.raises(BrokerStartError, match="exited with code 3") as caught:
        # The long timeout is never reached: the exit is noticed on the next poll.
        start_broker(BrokerKind.EMBEDDED, timeout=60)
    assert "boom: no such storage engine" in str(caught.value)


def test_apache_without_java_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(BrokerStartError, match="java is not on PATH"):
        start_broker(BrokerKind.APACHE)


def test_server_properties_for_a_single_node(tmp_path: Path) -> None:
    text = apache_broker.server_properties(log_dir=tmp_path, port=1234, controller_port=5678)
    settings = dict(line.split("=", 1) for line in text.splitlines() if not line.startswith("#"))
    assert settings["process.roles"] == "broker,controller"
    assert settings["listeners"] == "PLAINTEXT://127.0.0.1:1234,CONTROLLER://127.0.0.1:5678"
    assert settings["advertised.listeners"] == "PLAINTEXT://127.0.0.1:1234"
    assert settings["controller.quorum.voters"] == "1@127.0.0.1:5678"
    assert settings["log.dirs"] == str(tmp_path)
    assert settings["offsets.topic.replication.factor"] == "1"
    assert settings["transaction.state.log.replication.factor"] == "1"
    assert settings["group.initial.rebalance.delay.ms"] == "0"
    assert settings["auto.create.topics.enable"] == "true"
    assert settings["num.partitions"] == "6"
    # A restart after a SIGKILL waits this long for the dead incarnation's session.
    assert int(settings["broker.session.timeout.ms"]) <= 2000


def test_cluster_ids_look_like_kafka_uuids() -> None:
    ids = {apache_broker.new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


@pytest.mark.kafka
def test_embedded_start_and_stop_in_a_given_data_dir(tmp_path: Path) -> None:
    port = free_port()
    broker = start_broker(BrokerKind.EMBEDDED, data_dir=tmp_path, port=port)
    with broker:
        assert broker.bootstrap_servers == f"127.0.0.1:{port}"
        assert broker.supports_idempotence is False
        assert broker.is_alive()
        assert broker.log_file == tmp_path / "tansu.log"
    assert not broker.is_alive()
    assert not answers(broker.bootstrap_servers)
    broker.stop()  # A second stop does nothing.
    assert tmp_path.is_dir()  # A given data dir is the caller's: kept.


@pytest.mark.kafka
def test_apache_broker_describes_itself(apache_broker: RunningBroker) -> None:
    assert apache_broker.kind is BrokerKind.APACHE
    assert apache_broker.supports_idempotence is True
    assert apache_broker.log_file is not None
    assert "Kafka Server started" in apache_broker.log_file.read_text()


def test_a_stopped_broker_restarts_on_its_own_port_at_once(tmp_path: Path) -> None:
    # A client still connected (a gateway) is closed by the broker as it stops,
    # which leaves the connection in TIME_WAIT on the broker's port for a minute.
    first = start_broker(BrokerKind.EMBEDDED, data_dir=tmp_path / "one")
    port = int(first.bootstrap_servers.rsplit(":", 1)[1])
    with socket.create_connection((LOOPBACK, port)) as client:
        first.stop()
        client.settimeout(10)
        assert client.recv(1) == b""  # the broker closed its side first
    second = start_broker(BrokerKind.EMBEDDED, data_dir=tmp_path / "two", port=port)
    try:
        assert second.bootstrap_servers.endswith(f":{port}")
        assert answers(second.bootstrap_servers)
    finally:
        second.stop()


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_killed_apache_broker_starts_again_on_its_ports_with_its_topics(tmp_path: Path) -> None:
    async def create_topic(bootstrap: str) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic("kept", num_partitions=1, replication_factor=1)])
        finally:
            await admin.close()

    async def topics(bootstrap: str) -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return list(await admin.list_topics())
        finally:
            await admin.close()

    data = tmp_path / "kafka"
    first = start_broker(BrokerKind.APACHE, data_dir=data)
    port = int(first.bootstrap_servers.rsplit(":", 1)[1])
    asyncio.run(create_topic(first.bootstrap_servers))
    assert first.pid is not None
    os.kill(first.pid, signal.SIGKILL)
    first.stop()
    second = start_broker(BrokerKind.APACHE, data_dir=data, port=port)
    try:
        assert "kept" in asyncio.run(topics(second.bootstrap_servers))
    finally:
        second.stop()
