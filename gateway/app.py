"""Wire a gateway process: store, Kafka producer and consumers, agency
channels, the public API, the supplement-window sweeper."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import structlog
from aiokafka import AIOKafkaProducer

from common.clock import Clock, clock_from_env
from common.server import RunningRegistry, ServiceBinding, start_registry
from gateway.agencies import Agencies
from gateway.api import GatewayServicer
from gateway.config import GatewayConfig
from gateway.events import Event, Topics
from gateway.executor import StepExecutor
from gateway.kafka import (
    Membership,
    PartitionedConsumer,
    ensure_topics,
    make_consumer,
    make_producer,
    publish,
    static_membership_honoured,
)
from gateway.store import DossierStore
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
    if instance_id is not None and not await static_membership_honoured(
        config.bootstrap_servers, probe_topic
    ):
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


async def sweep_supplement_windows(
    store: DossierStore, producer: AIOKafkaProducer, topics: Topics, clock: Clock, every: float
) -> None:
    """Every gateway sweeps; the event id makes a second report harmless."""
    while True:
        now = clock.now()
        expired = store.expired_supplements(now)
        if expired:
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


async def run_gateway(config: GatewayConfig, clock: Clock | None = None) -> None:
    clock = clock or clock_from_env()
    topics = Topics.with_prefix(config.topic_prefix)
    store = DossierStore(config.database)
    await ensure_topics(config.bootstrap_servers, topics.all(), config.partitions)
    producer = make_producer(config.bootstrap_servers)
    await producer.start()
    agencies = Agencies.connect(
        population=config.population_address,
        insurance=config.insurance_address,
        health=config.health_address,
        deadline_seconds=config.call_deadline_seconds,
    )
    changed = asyncio.Condition()
    worker = SagaWorker(store, producer, topics, clock, changed)
    executor = StepExecutor(
        agencies,
        producer,
        topics,
        clock,
        retry_base_seconds=config.retry_base_seconds,
        retry_cap_seconds=config.retry_cap_seconds,
    )
    joining = await membership(config, topics.deadletter)
    # Distinct per process even without an instance id: the owner's name in
    # the saga store's partition claims.
    owner = joining.instance_id or f"gateway-pid-{os.getpid()}"

    def steps_consumer(name: str, group_id: str, topic: str) -> PartitionedConsumer:
        return PartitionedConsumer(
            name=name,
            consumer=make_consumer(
                config.bootstrap_servers,
                group_id,
                joining,
                max_poll_interval_ms=STEP_MAX_POLL_INTERVAL_MS,
            ),
            topics=[topic],
            handle=executor.handle_batch,
            check=executor.check,
            producer=producer,
            deadletter_topic=topics.deadletter,
            membership=joining,
            owners=store,
            owner_name=owner,
        )

    consumers = [
        PartitionedConsumer(
            name="saga",
            consumer=make_consumer(
                config.bootstrap_servers,
                f"{config.topic_prefix}-saga",
                joining,
                max_poll_interval_ms=SAGA_MAX_POLL_INTERVAL_MS,
            ),
            topics=[topics.dossiers, topics.step_outcomes],
            handle=worker.handle_batch,
            check=worker.check,
            producer=producer,
            deadletter_topic=topics.deadletter,
            membership=joining,
            owners=store,
            owner_name=owner,
        ),
        # A consumer (a group) per agency lane: a batch waiting out one
        # agency's outage holds up only that agency's partitions, and each
        # lane commits its own offsets.
        *(
            steps_consumer(f"steps-{agency}", f"{config.topic_prefix}-steps-{agency}", topic)
            for agency, topic in topics.step_lanes.items()
        ),
        # The topic before the lanes: an older gateway in the same deployment
        # may still send commands there. Its group keeps its old name, so the
        # offsets committed before an upgrade still count.
        steps_consumer("steps", f"{config.topic_prefix}-steps", topics.step_commands),
    ]
    for consumer in consumers:
        await consumer.start()
    servicer = GatewayServicer(
        store, producer, topics, clock, changed, clock_tolerance=config.clock_tolerance
    )
    running = await start_registry(
        [
            ServiceBinding(
                servicer, gateway_pb2_grpc.add_GatewayServiceServicer_to_server, SERVICE_NAME
            )
        ],
        host=config.host,
        port=config.port,
        serving=False,
    )
    log.info("listening", address=f"{config.host}:{running.port}", kafka=config.bootstrap_servers)
    tasks = [asyncio.create_task(c.run(), name=c.name) for c in consumers]
    tasks.append(
        asyncio.create_task(
            sweep_supplement_windows(store, producer, topics, clock, config.sweep_interval_seconds)
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks.append(asyncio.create_task(_serve_once_joined(running, consumers)))
    crashed = asyncio.ensure_future(asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION))
    await asyncio.wait(
        [crashed, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED
    )
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception():
            log.error("component crashed", component=task.get_name(), error=repr(task.exception()))
    log.info("stopping", grace_seconds=config.grace_seconds)
    await running.stop(config.grace_seconds)
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    for consumer in consumers:
        await consumer.stop()
    await producer.stop()
    await agencies.close()
    store.close()
    log.info("stopped")
