"""Gateway settings from environment variables, with defaults that run locally."""

from __future__ import annotations

import datetime as dt
import socket
from dataclasses import dataclass
from pathlib import Path

from common.agencies import AGENCIES, default_address
from common.config import (
    DEFAULT_PORTS,
    clock_tolerance,
    env_choice,
    env_float,
    env_int,
    env_str,
)


@dataclass(frozen=True)
class SessionTimeouts:
    """PostgreSQL session settings of the saga store's connections, so that a
    gateway frozen (SIGSTOP, a stalled host) while it holds locks cannot hold
    them for good: its peers on other hosts wait at most this long.

    idle_in_transaction: the server ends a session idle inside a transaction
    this long, which releases its locks. A store transaction never waits on
    anything but the next statement; between two, only the event loop's own
    stalls (a few hundred ms under load), so 5 s is far from a live gateway.
    lock: a statement waiting for a lock longer gives up (the operation fails
    and is retried: a batch is redelivered, a call answered UNAVAILABLE...).
    Above idle_in_transaction, so that a claim waiting on a frozen gateway's
    batch outlasts it and gets the lock rather than an error.
    statement: no statement of the store takes more than milliseconds; one
    running this long is stuck, and its caller is better off with an error."""

    idle_in_transaction_seconds: float = 5.0
    lock_seconds: float = 10.0
    statement_seconds: float = 30.0

    @classmethod
    def from_env(cls) -> SessionTimeouts:
        defaults = cls()
        return cls(
            idle_in_transaction_seconds=env_float(
                "LIENTHONG_GATEWAY_DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS",
                defaults.idle_in_transaction_seconds,
            ),
            lock_seconds=env_float(
                "LIENTHONG_GATEWAY_DB_LOCK_TIMEOUT_SECONDS", defaults.lock_seconds
            ),
            statement_seconds=env_float(
                "LIENTHONG_GATEWAY_DB_STATEMENT_TIMEOUT_SECONDS", defaults.statement_seconds
            ),
        )


@dataclass(frozen=True)
class GatewayConfig:
    host: str
    port: int
    bootstrap_servers: str
    # Each agency's host:port (common/agencies.py), from its
    # LIENTHONG_<NAME>_ADDRESS; by default our registry on its default port.
    agency_addresses: dict[str, str]
    # The saga store: a SQLite file's path, or a postgresql:// URL (then
    # log it with common.database_url.redacted).
    database: str
    topic_prefix: str
    partitions: int
    # Per agency call; a call past it counts as a transient failure and is retried.
    call_deadline_seconds: float
    # Exponential backoff between retries: base × 2^n, capped, with full jitter.
    retry_base_seconds: float
    retry_cap_seconds: float
    sweep_interval_seconds: float
    # How long a submission waits for the broker's acknowledgement before it
    # is answered UNAVAILABLE (stored all the same; the outbox relay
    # publishes it). Well above the acknowledgement's p99 under load.
    publish_timeout_seconds: float
    grace_seconds: float
    verbose: bool
    # How far past now a declared date of birth or death may reach.
    clock_tolerance: dt.timedelta
    # Static group membership (KIP-345): a gateway that restarts under the
    # same id within the session timeout gets its partitions back without a
    # rebalance. None: dynamic membership.
    instance_id: str | None
    # Whether the broker honours static membership: "yes", "no", or "probe"
    # (tried once at start, in a throwaway group).
    static_membership: str
    # Who shares the partitions out among the gateways: "kafka" (the broker's
    # consumer groups) or "store" (leases in the saga store, gateway/leases.py:
    # for brokers slow to hand a restarted member its partitions back).
    coordination: str
    # A member silent this long is dropped and its partitions move: the bound
    # on how long a gateway that is gone for good holds them.
    session_timeout_seconds: float
    # How long a rebalance waits for the members to rejoin. Set apart from the
    # step consumer's long poll interval, which aiokafka would not use for it,
    # but which a member's revocation must never approach either.
    rebalance_timeout_seconds: float
    # How long a fetch may wait at the broker for records to arrive. Apache
    # Kafka answers as soon as a record arrives; Tansu answers late within the
    # window (each hop of a dossier then waits: brokers/embedded.py), so the
    # stack gives its gateways a short one there.
    fetch_max_wait_ms: int
    # How long the producer holds a batch open for more records.
    linger_ms: int
    # How long a partition being handed over may finish its batch in flight
    # before that batch is cancelled (its agency retries with it).
    handover_grace_seconds: float
    # For a PostgreSQL saga store (see SessionTimeouts).
    db_timeouts: SessionTimeouts = SessionTimeouts()
    # A step's outcome goes straight to this process's saga worker when it
    # holds the outcome's partition, not through the broker
    # (gateway/local_outcomes.py).
    local_outcomes: bool = True

    @classmethod
    def from_env(cls) -> GatewayConfig:
        data_dir = Path(env_str("LIENTHONG_DATA_DIR", "data"))
        port = env_int("LIENTHONG_GATEWAY_PORT", DEFAULT_PORTS["gateway"])
        return cls(
            host=env_str("LIENTHONG_GATEWAY_HOST", "127.0.0.1"),
            port=port,
            bootstrap_servers=env_str("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            agency_addresses={
                a.name: env_str(a.address_variable, default_address(a.name)) for a in AGENCIES
            },
            database=env_str("LIENTHONG_GATEWAY_DB", str(data_dir / "gateway.sqlite3")),
            topic_prefix=env_str("LIENTHONG_TOPIC_PREFIX", "lienthong"),
            # Fewer partitions make bigger batches (one store transaction and
            # one wait for acks each): at 220 dossiers/s on 2 cores, p99 fell
            # from 3.6 s with 12 to 0.7 s with 6. It also caps the gateway
            # processes that share the work at 6.
            partitions=env_int("LIENTHONG_KAFKA_PARTITIONS", 6),
            call_deadline_seconds=env_float("LIENTHONG_CALL_DEADLINE_SECONDS", 5.0),
            retry_base_seconds=env_float("LIENTHONG_RETRY_BASE_SECONDS", 0.1),
            retry_cap_seconds=env_float("LIENTHONG_RETRY_CAP_SECONDS", 5.0),
            sweep_interval_seconds=env_float("LIENTHONG_SWEEP_INTERVAL_SECONDS", 1.0),
            publish_timeout_seconds=env_float("LIENTHONG_PUBLISH_TIMEOUT_SECONDS", 3.0),
            grace_seconds=env_float("LIENTHONG_GRACE_SECONDS", 5.0),
            verbose=env_str("LIENTHONG_VERBOSE", "1") not in ("0", "false", "no"),
            clock_tolerance=clock_tolerance(),
            instance_id=_instance_id(port),
            static_membership=env_choice(
                "LIENTHONG_STATIC_MEMBERSHIP", ("probe", "yes", "no"), "probe"
            ),
            coordination=env_choice("LIENTHONG_GROUP_COORDINATION", ("kafka", "store"), "kafka"),
            session_timeout_seconds=env_float("LIENTHONG_GROUP_SESSION_TIMEOUT_SECONDS", 6.0),
            rebalance_timeout_seconds=env_float("LIENTHONG_GROUP_REBALANCE_TIMEOUT_SECONDS", 5.0),
            handover_grace_seconds=env_float("LIENTHONG_HANDOVER_GRACE_SECONDS", 1.0),
            fetch_max_wait_ms=env_int("LIENTHONG_KAFKA_FETCH_MAX_WAIT_MS", 500),
            db_timeouts=SessionTimeouts.from_env(),
            linger_ms=env_int("LIENTHONG_KAFKA_LINGER_MS", 5),
            local_outcomes=env_str("LIENTHONG_LOCAL_OUTCOMES", "1") not in ("0", "false", "no"),
        )


def _instance_id(port: int) -> str | None:
    """LIENTHONG_GATEWAY_INSTANCE_ID, "none" for dynamic membership; by
    default the host's name and the gateway's port, which a restart keeps and
    which no two gateways running at once share."""
    # Port 0 (any free port) is no identity: dynamic membership then.
    default = f"gateway-{socket.gethostname()}-{port}" if port else "none"
    chosen = env_str("LIENTHONG_GATEWAY_INSTANCE_ID", default)
    return None if chosen.strip().lower() in ("", "none") else chosen.strip()
