"""The gateway's own metrics, beside every process's call metrics
(common/metrics.py) in the process's registry.

Told by the parts that know: the step executor (steps by outcome, steps
retried), the partitioned consumers (dead letters, batches retried, consumer
lag). Read on scrape, from where the truth is kept: dossiers by state and the
outbox's backlog from the saga store, the agencies' circuit breakers from the
gateway's agency clients.

Dossiers by state is a gauge read from the saga store on scrape (one indexed
GROUP BY), not counters of transitions kept by each process: the store is
shared by every gateway process and outlives them, so the count is right
whichever process moved a dossier, and after restarts; a scrape every 15 s
costs one query, where counters would cost a write per event and would still
need summing over processes. Every gateway of one store reports the same
numbers: aggregate them with max, not sum.

Labels are bounded: agencies and steps are the procedure table's (a command
naming any other is dead-lettered before it runs), consumers, groups and
topics are the gateway's own, partitions the topics' few.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import cast

import structlog
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from common.database_url import is_postgres
from gateway.agencies import Agencies
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2 as pb

log = structlog.get_logger("metrics")

# A scrape waits at most this long for a writer's lock on the saga store.
STORE_READ_TIMEOUT_SECONDS = 2.0


def outcome_name(kind: ev.StepOutcomeKind.ValueType) -> str:
    """STEP_OUTCOME_KIND_SUCCEEDED → "SUCCEEDED"."""
    return ev.StepOutcomeKind.Name(kind).removeprefix("STEP_OUTCOME_KIND_")


def state_name(state: int) -> str:
    """DOSSIER_STATE_COMPLETED → "COMPLETED"; a number no state has, as a number."""
    try:
        return pb.DossierState.Name(cast(pb.DossierState.ValueType, state)).removeprefix(
            "DOSSIER_STATE_"
        )
    except ValueError:
        return str(state)


class GatewayMetrics:
    """What the executor and the consumers count; a fresh registry (served by
    nobody) unless given the process's."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = CollectorRegistry() if registry is None else registry
        self.steps = Counter(
            "lienthong_steps",
            "Steps run at an agency, by agency, step and outcome (SUCCEEDED, REJECTED).",
            ["agency", "step", "outcome"],
            registry=registry,
        )
        self.step_retries = Counter(
            "lienthong_step_retries",
            "Agency calls of a step tried again after a transient failure (UNAVAILABLE, "
            "DEADLINE_EXCEEDED...), by agency and step.",
            ["agency", "step"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "lienthong_dead_letters",
            "Records sent to the dead-letter topic (never processable), by consumer and "
            "the topic they came from.",
            ["consumer", "topic"],
            registry=registry,
        )
        self.batch_retries = Counter(
            "lienthong_batch_retries",
            "Batches handled again after a failure (the broker or the store away), by "
            "consumer and topic.",
            ["consumer", "topic"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "lienthong_consumer_lag",
            "Records of a partition this process holds that it has not handled yet: the "
            "partition's high watermark minus the next offset to handle, by consumer "
            "group, topic and partition.",
            ["group", "topic", "partition"],
            registry=registry,
        )

    def step_done(self, agency: str, step: str, kind: ev.StepOutcomeKind.ValueType) -> None:
        self.steps.labels(agency, step, outcome_name(kind)).inc()

    def step_retried(self, agency: str, step: str) -> None:
        self.step_retries.labels(agency, step).inc()

    def dead_lettered(self, consumer: str, topic: str) -> None:
        self.dead_letters.labels(consumer, topic).inc()

    def batch_retried(self, consumer: str, topic: str) -> None:
        self.batch_retries.labels(consumer, topic).inc()

    def lag(self, group: str, tp: TopicPartition, records: int) -> None:
        self.consumer_lag.labels(group, tp.topic, str(tp.partition)).set(max(0, records))

    def forget_partitions(self, group: str, partitions: Iterable[TopicPartition]) -> None:
        """A partition handed over is the next owner's to report."""
        for tp in partitions:
            with contextlib.suppress(KeyError):
                self.consumer_lag.remove(group, tp.topic, str(tp.partition))


# The same two queries on either saga store (gateway/store_sqlite.py,
# gateway/store_postgres.py: the same tables and columns).
DOSSIERS_BY_STATE = "SELECT state, count(*) FROM dossiers GROUP BY state"
OUTBOX_BACKLOG = "SELECT count(*), min(stored_at) FROM outbox WHERE published_at IS NULL"


class StoreUnreadable(Exception):
    """The saga store could not be read for a scrape (either engine's error)."""


class StoreCollector(Collector):
    """Dossiers by state and the outbox's backlog, read from the saga store at
    each scrape. The scrape runs on the HTTP server's thread, not the event
    loop: it opens a connection of its own, a blocking one (SQLite in WAL: the
    read waits for no writer; PostgreSQL: a read takes no lock a writer waits on)."""

    def __init__(self, database: str | Path) -> None:
        self.database = database

    def _read(self) -> tuple[dict[int, int], int, float | None]:
        """StoreUnreadable if the store cannot be read just now."""
        if is_postgres(self.database):
            return self._read_postgres()
        try:
            connection = sqlite3.connect(self.database, timeout=STORE_READ_TIMEOUT_SECONDS)
            try:
                counts = dict(connection.execute(DOSSIERS_BY_STATE))
                waiting, stored_at = connection.execute(OUTBOX_BACKLOG).fetchone()
            finally:
                connection.close()
        except sqlite3.Error as error:
            raise StoreUnreadable(str(error)) from error
        return counts, int(waiting), stored_at

    def _read_postgres(self) -> tuple[dict[int, int], int, float | None]:
        # Imported here: psycopg takes ~0.2 s to import, which a gateway on
        # SQLite (the default) would pay at each start.
        import psycopg  # noqa: PLC0415

        timeout_ms = round(STORE_READ_TIMEOUT_SECONDS * 1000)
        try:
            with psycopg.connect(
                str(self.database),
                connect_timeout=max(1, round(STORE_READ_TIMEOUT_SECONDS)),
                options=f"-c statement_timeout={timeout_ms}",
                autocommit=True,
            ) as conn:
                counts = {int(s): int(n) for s, n in conn.execute(DOSSIERS_BY_STATE).fetchall()}
                row = conn.execute(OUTBOX_BACKLOG).fetchone()
        except psycopg.Error as error:
            raise StoreUnreadable(str(error)) from error
        assert row is not None
        return counts, int(row[0]), row[1]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        dossiers = GaugeMetricFamily(
            "lienthong_dossiers",
            "Dossiers in the saga store, by state (every gateway of one store reports the "
            "same: aggregate with max).",
            labels=["state"],
        )
        pending = GaugeMetricFamily(
            "lienthong_outbox_pending",
            "Events stored in the outbox and not yet acknowledged by the broker.",
        )
        oldest = GaugeMetricFamily(
            "lienthong_outbox_oldest_pending_seconds",
            "How long the oldest event not yet acknowledged by the broker has waited "
            "(0 when none waits).",
        )
        try:
            counts, waiting, stored_at = self._read()
        except StoreUnreadable as error:
            # The rest of the scrape still counts: these series are missing
            # from this one (Prometheus shows the gap), and the log says why.
            log.warning("saga store not read for metrics", error=str(error))
            return
        # Every state, at 0 too: a query for COMPLETED finds a series from the start.
        for known in pb.DossierState.values():
            if known != pb.DOSSIER_STATE_UNSPECIFIED:
                dossiers.add_metric([state_name(known)], counts.pop(known, 0))
        # A state a newer gateway sharing the store knows, by its number.
        for state, count in counts.items():
            dossiers.add_metric([state_name(state)], count)
        pending.add_metric([], waiting)
        oldest.add_metric([], 0.0 if stored_at is None else max(0.0, time.time() - stored_at))
        yield dossiers
        yield pending
        yield oldest


class BreakerCollector(Collector):
    """Whether each agency's circuit breaker is open (gateway/breaker.py), at scrape."""

    def __init__(self, agencies: Agencies) -> None:
        self.agencies = agencies

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "lienthong_agency_breaker_open",
            "1 while the gateway's circuit breaker for an agency is open (the agency "
            "did not answer several calls in a row; one call at a time probes it), else 0.",
            labels=["agency"],
        )
        breakers = dict(self.agencies.breakers)
        for name in list(self.agencies.stubs):
            breaker = breakers.get(name)
            family.add_metric([name], 1.0 if breaker is not None and breaker.open else 0.0)
        yield family


def register_gateway_collectors(
    registry: CollectorRegistry, *, database: str | Path, agencies: Agencies
) -> None:
    registry.register(StoreCollector(database))
    registry.register(BreakerCollector(agencies))
