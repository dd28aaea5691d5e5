"""Wire a gateway process: store and outbox, the public API, agency
channels, then (once the broker answers) the Kafka producer and consumers,
the outbox relay and the supplement-window sweeper.

A gateway starts whether or not Kafka and the agencies are up: it listens at
once, says NOT_SERVING on its gRPC health while it waits for the broker
(with backoff), and SERVING once both consumers joined their groups."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from aiokafka import AIOKafkaProducer

from common import event_loop
from common.channels import server_tls
from common.clock import Clock, clock_from_env
from common.database_url import redacted
from common.errors import Unavailable
from common.metrics import process_registry
from common.observers import observers_for
from common.server import RunningRegistry, ServiceBinding, start_registry
from gateway.agencies import Agencies
from gateway.api import GatewayServicer
from gateway.backoff import BROKER_DOWN, Backoff, until_done
from gateway.config import GatewayConfig
from gateway.events import Event, Topics
from gateway.executor import StepExecutor
from gateway.kafka import (
    GroupConsumer,
    Incarnations,
    Membership,
    PartitionedConsumer,
    StoredIncarnations,
    always_trusted,
    ensure_topics,
    make_consumer,
    make_plain_consumer,
    make_producer,
    publish,
    send_alone,
    static_membership_honoured,
)
from gateway.leases import LeasedConsumer, Roster
from gateway.local_outcomes import LocalOutcomes
from gateway.metrics import GatewayMetrics, register_gateway_collectors
from gateway.outbox import Outbox
from gateway.store import SagaStore, open_saga_store
from gateway.worker import SagaWorker
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2, gateway_pb2_grpc

log = structlog.get_logger("gateway")
SERVICE_NAME = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name
# A step may retry for a long time while an agency is down; the consumer must
# not be evicted from its group meanwhile. (aiokafka does not make it the
# rebalance timeout; Membership sets that apart, and short.)
STEP_MAX_POLL_INTERVAL_MS = 3_600_000
SAGA_MAX_POLL_INTERVAL_MS = 300_000


async def membership(config: GatewayConfig, probe_topic: str) -> Membership:
    """The gateway's group membership: static under its instance id when the
    broker honours it (tried once at start), else dynamic, said once."""
    instance_id = config.instance_id
    honoured = {"yes": True, "no": False}.get(config.static_membership)
    if instance_id is not None and honoured is None:
        honoured = await static_membership_honoured(config.bootstrap_servers, probe_topic)
    if instance_id is not None and not honoured:
        log.warning(
            "static group membership not honoured by the broker; using dynamic membership",
            instance_id=instance_id,
            session_timeout_s=config.session_timeout_seconds,
        )
        instance_id = None
    return Membership(
        instance_id=instance_id,
        session_timeout_ms=round(config.session_timeout_seconds * 1000),
        rebalance_timeout_ms=round(config.rebalance_timeout_seconds * 1000),
        handover_grace_seconds=config.handover_grace_seconds,
    )


# While the broker is down at start: 0.5 s, 1 s, then every 2 s (see Backoff).
BROKER_BACKOFF_BASE_SECONDS = 0.5
BROKER_BACKOFF_CAP_SECONDS = 2.0


async def sweep_supplement_windows(
    store: SagaStore, producer: AIOKafkaProducer, topics: Topics, clock: Clock, every: float
) -> None:
    """Every gateway sweeps; the event id makes a second report harmless.
    What the broker did not take is found again by the next sweep, since the
    store still says the window has passed."""
    while True:
        now = clock.now()
        try:
            expired = await store.expired_supplements(now)
        except Unavailable as error:
            # The saga store away: the windows are still there next sweep.
            log.warning("sweep skipped: saga store unavailable", error=error.message)
            expired = []
        if expired:
            try:
                await publish(
                    producer,
                    [
                        (
                            topics.dossiers,
                            Event(
                                f"{d}/supplement-expired",
                                d,
                                ev.SupplementWindowExpired(dossier_id=d),
                                now,
                            ),
                        )
                        for d in expired
                    ],
                )
            except BROKER_DOWN as error:
                log.warning("sweep not published", dossiers=len(expired), error=repr(error))
        await asyncio.sleep(every)


async def _serve_once_joined(
    running: RunningRegistry, consumers: list[PartitionedConsumer]
) -> None:
    """Health says SERVING only once every consumer joined its group: a
    stack (or compose) that waits for the gateway then knows a submission
    will be worked at once, not after the first rebalance."""
    await asyncio.gather(*(c.joined.wait() for c in consumers))
    await running.set_serving(True)
    log.info("serving", consumers=[c.name for c in consumers])
    await asyncio.Event().wait()  # stays among the tasks watched for a crash


@dataclass
class _Kafka:
    """The Kafka clients started so far, so that a stop during start-up (the
    broker still down) closes exactly those."""

    producer: AIOKafkaProducer | None = None
    consumers: list[PartitionedConsumer] = field(default_factory=list)
    # Store-coordinated partitions: this process's beat (gateway/leases.py).
    roster: Roster | None = None

    async def close(self, grace: float) -> None:
        # Bounded: with the broker away, a producer's flush or a consumer's
        # last commit could wait for it for good. What is cut short is safe:
        # uncommitted records are redelivered, unacknowledged outbox events
        # are published by the next start's relay.
        async def stop_all() -> None:
            await asyncio.gather(*(c.stop() for c in self.consumers), return_exceptions=True)
            if self.roster is not None:
                # Gone at once for the other members, not after a session.
                await self.roster.leave()
            if self.producer is not None:
                await self.producer.stop()

        with contextlib.suppress(Exception):
            await asyncio.wait_for(stop_all(), grace)


async def _start_producer(bootstrap: str, linger_ms: int) -> AIOKafkaProducer:
    producer = make_producer(bootstrap, linger_ms=linger_ms)
    try:
        await producer.start()
    except BaseException:
        # A producer that failed to bootstrap is not started again: a new one next time.
        await producer.stop()
        raise
    return producer


async def _connect_and_run(
    *,
    config: GatewayConfig,
    clock: Clock,
    store: SagaStore,
    outbox: Outbox,
    agencies: Agencies,
    changed: asyncio.Condition,
    running: RunningRegistry,
    kafka: _Kafka,
    metrics: GatewayMetrics,
) -> None:
    """Reach the broker (waiting with backoff while it is down: health says
    NOT_SERVING meanwhile), then run the consumers, the outbox relay and the
    sweeper until one of them fails."""
    topics = Topics.with_prefix(config.topic_prefix)
    backoff = Backoff(BROKER_BACKOFF_BASE_SECONDS, BROKER_BACKOFF_CAP_SECONDS)
    bootstrap = config.bootstrap_servers
    partition_counts = await until_done(
        f"kafka at {bootstrap} (topics)",
        lambda: ensure_topics(bootstrap, topics.all(), config.partitions),
        backoff,
    )
    producer = await until_done(
        f"kafka at {bootstrap} (producer)",
        lambda: _start_producer(bootstrap, config.linger_ms),
        backoff,
    )
    kafka.producer = producer
    outbox.connect(lambda topic, event: send_alone(producer, topic, event))
    worker = SagaWorker(store, producer, topics, clock, changed)
    leased = config.coordination == "store"
    joining = (
        Membership(
            session_timeout_ms=round(config.session_timeout_seconds * 1000),
            handover_grace_seconds=config.handover_grace_seconds,
        )
        if leased
        else await until_done(
            f"kafka at {bootstrap} (group membership)",
            lambda: membership(config, topics.deadletter),
            backoff,
        )
    )
    # Distinct per process even without an instance id: the owner's name in
    # the saga store's partition claims (and, leased, of its leases).
    owner = config.instance_id if leased else joining.instance_id
    owner = owner or f"gateway-pid-{os.getpid()}"
    if leased:
        kafka.roster = Roster(store, owner, session_seconds=config.session_timeout_seconds)
        await kafka.roster.beat_once()

    # Leased: a worker stops before its next agency call or publication once
    # this process's beats are no longer recent (Lease.trusted).
    trusted = kafka.roster.trusted if kafka.roster is not None else always_trusted

    def incarnations(group_id: str) -> Incarnations | None:
        """Under dynamic membership, with an instance id configured (stable
        across restarts): rejoin each group as this gateway's previous member."""
        if leased or joining.instance_id is not None or config.instance_id is None:
            return None
        return StoredIncarnations(store, config.instance_id, group_id)

    def group_consumer(
        group_id: str, topics_read: list[str], max_poll_interval_ms: int, fetch_max_wait_ms: int
    ) -> Callable[[], GroupConsumer]:
        """The consumer for a group: the broker's group, or leases in the store."""

        def make() -> GroupConsumer:
            if kafka.roster is not None:
                return LeasedConsumer(
                    make_plain_consumer(config.bootstrap_servers, fetch_max_wait_ms),
                    kafka.roster,
                    name=group_id,
                    partitions={t: partition_counts[t] for t in topics_read},
                )
            consumer: GroupConsumer = make_consumer(
                config.bootstrap_servers,
                group_id,
                joining,
                max_poll_interval_ms=max_poll_interval_ms,
                fetch_max_wait_ms=fetch_max_wait_ms,
            )
            return consumer

        return make

    def partitioned(
        name: str,
        group_id: str,
        topics_read: list[str],
        handler: SagaWorker | StepExecutor,
        *,
        max_poll_interval_ms: int,
        fetch_max_wait_ms: int = config.fetch_max_wait_ms,
    ) -> PartitionedConsumer:
        """A group's consumer, its records handed to the handler's batches."""
        make = group_consumer(group_id, topics_read, max_poll_interval_ms, fetch_max_wait_ms)
        return PartitionedConsumer(
            name=name,
            consumer=make(),
            remake=make,
            topics=topics_read,
            handle=handler.handle_batch,
            check=handler.check,
            producer=producer,
            deadletter_topic=topics.deadletter,
            membership=joining,
            owners=store,
            owner_name=owner,
            incarnations=incarnations(group_id),
            group_id=group_id,
            metrics=metrics,
            trusted=trusted,
        )

    saga = partitioned(
        "saga",
        topics.saga_group,
        [topics.dossiers, topics.step_outcomes],
        worker,
        max_poll_interval_ms=SAGA_MAX_POLL_INTERVAL_MS,
    )
    executor = StepExecutor(
        agencies,
        producer,
        topics,
        clock,
        retry_base_seconds=config.retry_base_seconds,
        retry_cap_seconds=config.retry_cap_seconds,
        metrics=metrics,
        deliver=(
            LocalOutcomes(saga, producer, partition_counts).deliver
            if config.local_outcomes
            else None
        ),
    )

    consumers = [
        saga,
        # A consumer (a group) per agency lane: a batch waiting out one
        # agency's outage holds up only that agency's partitions, and each
        # lane commits its own offsets.
        *(
            partitioned(
                f"steps-{agency}",
                topics.lane_group(agency),
                [topic],
                executor,
                max_poll_interval_ms=STEP_MAX_POLL_INTERVAL_MS,
            )
            for agency, topic in topics.step_lanes.items()
        ),
        # The topic before the lanes: an older gateway in the same deployment
        # may still send commands there. Its group keeps its old name, so the
        # offsets committed before an upgrade still count.
        # Its commands are leftovers, not worth a short fetch window's idle
        # fetches: the client's default.
        partitioned(
            "steps",
            topics.legacy_steps_group,
            [topics.step_commands],
            executor,
            max_poll_interval_ms=STEP_MAX_POLL_INTERVAL_MS,
            fetch_max_wait_ms=500,
        ),
    ]
    for consumer in consumers:
        await until_done(
            f"kafka at {bootstrap} ({consumer.name} consumer)", consumer.start, backoff
        )
        kafka.consumers.append(consumer)
    tasks = [asyncio.create_task(c.run(), name=c.name) for c in consumers]
    if kafka.roster is not None:
        tasks.append(asyncio.create_task(kafka.roster.run(), name="roster"))
    tasks.append(asyncio.create_task(outbox.run(), name="outbox relay"))
    tasks.append(
        asyncio.create_task(
            sweep_supplement_windows(store, producer, topics, clock, config.sweep_interval_seconds),
            name="supplement sweeper",
        )
    )
    tasks.append(asyncio.create_task(_serve_once_joined(running, consumers), name="health"))
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception():
                log.error(
                    "component crashed", component=task.get_name(), error=repr(task.exception())
                )
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def run_gateway(config: GatewayConfig, clock: Clock | None = None) -> None:
    clock = clock or clock_from_env()
    topics = Topics.with_prefix(config.topic_prefix)
    store = await open_saga_store(config.database, timeouts=config.db_timeouts)
    outbox = Outbox(store, timeout=config.publish_timeout_seconds)
    # Channels connect lazily: an agency that is down does not hold up the
    # start; its steps wait for it (retries with backoff).
    agencies = Agencies.connect(
        config.agency_addresses, deadline_seconds=config.call_deadline_seconds
    )
    changed = asyncio.Condition()
    # The process's metrics, served when LIENTHONG_METRICS_PORT is set
    # (observers_for starts the endpoint); counted either way, at little cost.
    registry = process_registry()
    metrics = GatewayMetrics(registry)
    register_gateway_collectors(registry, database=config.database, agencies=agencies)
    servicer = GatewayServicer(
        store, outbox, topics, clock, changed, clock_tolerance=config.clock_tolerance
    )
    # Listening before Kafka is reached: health answers NOT_SERVING meanwhile
    # (rather than nothing at all), and submissions are stored and answered
    # UNAVAILABLE, to be published by the relay.
    running = await start_registry(
        [
            ServiceBinding(
                servicer, gateway_pb2_grpc.add_GatewayServiceServicer_to_server, SERVICE_NAME
            )
        ],
        host=config.host,
        port=config.port,
        serving=False,
        # Gateways sharing a data directory each get a log of their own
        # (gateway.jsonl, gateway-2.jsonl...: see common/message_log.py).
        observers=observers_for("gateway"),
        # Mutual TLS and the access policy, or plain text only when asked.
        tls=server_tls("gateway"),
    )
    log.info(
        "listening",
        address=f"{config.host}:{running.port}",
        kafka=config.bootstrap_servers,
        saga_store=redacted(config.database),
        event_loop=event_loop.running(),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    kafka = _Kafka()
    work = asyncio.create_task(
        _connect_and_run(
            config=config,
            clock=clock,
            store=store,
            outbox=outbox,
            agencies=agencies,
            changed=changed,
            running=running,
            kafka=kafka,
            metrics=metrics,
        )
    )
    await asyncio.wait(
        [work, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED
    )
    # The work never ends by itself: if it did, something failed.
    failed = work.done()
    if failed:
        # Never silently: a cancellation from inside counts as a failure too.
        why = "cancelled" if work.cancelled() else repr(work.exception())
        log.error("gateway failed", error=why)
    log.info("stopping", grace_seconds=config.grace_seconds)
    await running.stop(config.grace_seconds)
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await work
    await kafka.close(config.grace_seconds)
    await agencies.close()
    await store.close()
    log.info("stopped")
    if failed:
        # Non-zero, so that a supervisor's restart policy starts it again.
        raise SystemExit(1)
