"""The ``docker`` broker: the apache/kafka image (KRaft single node) through testcontainers.

testcontainers' own KafkaContainer drives the Confluent image's start scripts
(/etc/confluent/docker/...), which the apache/kafka image does not have, so this
uses its generic DockerContainer and configures the image by environment
variables (KAFKA_FOO_BAR is foo.bar), with the same single-node settings as the
``apache`` broker and the same Kafka version.

Kafka tells clients the address to reconnect to, so that address must be the
host port: the host port is chosen here and bound to the container's 9092,
instead of letting Docker pick one after the broker's config is fixed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from brokers._core import BrokerKind, BrokerStartError, RunningBroker
from brokers._process import free_port
from brokers._ready import wait_until_answers
from brokers.apache import SINGLE_NODE_SETTINGS
from brokers.kafka_jars import kafka_version

START_TIMEOUT_SECONDS = 120.0
CONTAINER_PORT = 9092
IMAGE_ENV_VAR = "LIENTHONG_KAFKA_IMAGE"


def image() -> str:
    return os.environ.get(IMAGE_ENV_VAR) or f"apache/kafka:{kafka_version()}"


def container_env(*, host: str, host_port: int) -> dict[str, str]:
    """The apache/kafka image's settings, as environment variables."""
    settings = {
        "node.id": "1",
        "process.roles": "broker,controller",
        "controller.quorum.voters": "1@localhost:9093",
        # EXTERNAL is what the host's clients use; the broker talks to itself on
        # BROKER, because the host's address means nothing inside the container.
        "listeners": (
            f"EXTERNAL://0.0.0.0:{CONTAINER_PORT},BROKER://0.0.0.0:19092,CONTROLLER://0.0.0.0:9093"
        ),
        "advertised.listeners": f"EXTERNAL://{host}:{host_port},BROKER://localhost:19092",
        "listener.security.protocol.map": (
            "EXTERNAL:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT"
        ),
        "inter.broker.listener.name": "BROKER",
        "controller.listener.names": "CONTROLLER",
        **SINGLE_NODE_SETTINGS,
    }
    env = {"KAFKA_" + key.upper().replace(".", "_"): value for key, value in settings.items()}
    env["KAFKA_HEAP_OPTS"] = "-Xms128m -Xmx512m"
    return env


def _default_client() -> Any:
    # Imported here, like testcontainers below: slow to import, and needed by no other kind.
    import docker  # type: ignore[import-untyped]  # noqa: PLC0415  (docker-py has no hints)

    return docker.from_env(timeout=5)


def check_engine(client_factory: Callable[[], Any] = _default_client) -> None:
    """Raise a short BrokerStartError unless a Docker engine answers a ping."""
    try:
        client = client_factory()
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # docker-py raises DockerException, requests' and OS errors
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise BrokerStartError(
            "no Docker engine found: --broker docker runs Kafka in a container and needs a "
            "running Docker engine (DOCKER_HOST, or /var/run/docker.sock). "
            f"Use --broker apache or --broker embedded instead. ({reason})"
        ) from None


def start(*, timeout: float | None = None) -> RunningBroker:
    check_engine()
    from testcontainers.core.container import DockerContainer  # noqa: PLC0415

    host_port = free_port()
    container = DockerContainer(image())
    bootstrap = "?"
    try:
        # Asked before start: testcontainers' docker-host mode (the usual one) knows
        # the host without a container; its in-container modes raise, reported below.
        host = container.get_container_host_ip()
        bootstrap = f"{host}:{host_port}"
        container.with_envs(**container_env(host=host, host_port=host_port))
        container.with_bind_ports(CONTAINER_PORT, host_port)
        container.start()
        wait_until_answers(
            bootstrap, timeout=timeout or START_TIMEOUT_SECONDS, what=f"the {image()} container"
        )
    except BaseException as exc:
        container.stop()
        if isinstance(exc, Exception) and not isinstance(exc, BrokerStartError):
            raise BrokerStartError(f"could not start the {image()} container: {exc}") from exc
        raise
    return RunningBroker(
        kind=BrokerKind.DOCKER,
        bootstrap_servers=bootstrap,
        supports_idempotence=True,
        static_membership=True,
        _stop=container.stop,
    )
