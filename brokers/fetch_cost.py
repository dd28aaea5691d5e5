"""What a fetch costs the broker as a partition grows: a benchmark that prints figures.

    .venv/bin/python -m brokers.fetch_cost [--broker embedded|apache] [--sizes 0,5000,10000,20000]

Why it exists: on the embedded broker (Tansu 0.6, memory storage) a dossier's
latency drifts upwards over a long replay, and Tansu's CPU with it (0.3 to 0.8
of a core within 150 s at 50 dossiers/s, 2026-11-30). Each fetch that returns
records costs Tansu time in proportion to the batches already stored in that
partition: it lists them all to find the one the fetch starts at. A fetch that
finds nothing new costs nothing extra, and a partition of a few large batches
stays cheap. Its memory engine keeps every batch (no retention, and it closes
the connection on DeleteRecords), so the cost only grows. The gateway's
records are one batch each at moderate rates (a unit of work's records go at
once: gateway.kafka.send_now), so its busiest partitions grow by tens of
batches a second.

The benchmark fills one partition with single-record batches, then for each
size sends records one at a time to a consumer waiting at the end (as a
gateway's hop does) and prints the broker's CPU per record from /proc. On
Apache Kafka the figure stays flat (it finds a fetch's offset through its
index). Figures, not assertions: tests/brokers/test_fetch_cost.py only checks
that it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from brokers import BrokerKind, RunningBroker, start_broker
from common.processes import proc_stat

TOPIC = "fetch-cost"
PAYLOAD = b"x" * 300  # about a step outcome's size with its headers
DEFAULT_SIZES = (0, 5_000, 10_000, 20_000)
DEFAULT_PROBES = 100
WAIT_SECONDS = 30.0  # for one probe record to come back: a broker that lost it


@dataclass(frozen=True)
class Figure:
    stored_batches: int
    cpu_us_per_record: float  # the broker's CPU for one record produced and fetched
    round_trip_ms: float  # produce acknowledged to consumed, the median


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU of a process, from /proc (Linux): utime and stime."""
    fields = proc_stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _fill(producer: AIOKafkaProducer, count: int) -> None:
    # Awaiting each acknowledgement before the next send: one batch per record.
    for _ in range(count):
        await (await producer.send(TOPIC, PAYLOAD, partition=0))


async def _probe(
    broker: RunningBroker, producer: AIOKafkaProducer, consumer: AIOKafkaConsumer, probes: int
) -> tuple[float, float]:
    assert broker.pid is not None
    got = 0
    arrived = asyncio.Event()

    async def read() -> None:
        nonlocal got
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            got += sum(len(records) for records in batches.values())
            arrived.set()

    reader = asyncio.create_task(read())
    try:
        trips = []
        before = process_cpu_seconds(broker.pid)
        for n in range(1, probes + 1):
            sent = time.perf_counter()
            await (await producer.send(TOPIC, PAYLOAD, partition=0))
            deadline = time.monotonic() + WAIT_SECONDS
            while got < n:
                arrived.clear()
                await asyncio.wait_for(arrived.wait(), max(0.0, deadline - time.monotonic()))
            trips.append((time.perf_counter() - sent) * 1000)
        cpu = process_cpu_seconds(broker.pid) - before
    finally:
        reader.cancel()
    trips.sort()
    return cpu / probes * 1e6, trips[len(trips) // 2]


async def measure(
    broker: RunningBroker, sizes: Sequence[int], probes: int = DEFAULT_PROBES
) -> list[Figure]:
    """For each size (ascending), fill the partition to that many batches and probe it."""
    if broker.pid is None:
        raise ValueError("the broker's process is not ours: its CPU cannot be read")
    servers = broker.bootstrap_servers
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=servers, enable_idempotence=False, linger_ms=0, acks="all"
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers,
        enable_auto_commit=False,
        fetch_max_wait_ms=broker.fetch_max_wait_ms or 500,
    )
    await producer.start()
    await consumer.start()
    figures = []
    try:
        partition = TopicPartition(TOPIC, 0)
        consumer.assign([partition])
        stored = 0
        for size in sorted(sizes):
            await _fill(producer, size - stored)
            stored = max(stored, size)
            await consumer.seek_to_end(partition)
            cpu_us, trip_ms = await _probe(broker, producer, consumer, probes)
            stored += probes
            figures.append(Figure(size, round(cpu_us), round(trip_ms, 1)))
    finally:
        await consumer.stop()
        await producer.stop()
    return figures


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m brokers.fetch_cost",
        description="The broker's CPU per record fetched as a partition grows (figures only).",
    )
    parser.add_argument(
        "--broker", choices=[BrokerKind.EMBEDDED.value, BrokerKind.APACHE.value], default="embedded"
    )
    parser.add_argument(
        "--sizes",
        default=",".join(map(str, DEFAULT_SIZES)),
        help="stored batches to probe at, comma-separated (default: %(default)s)",
    )
    parser.add_argument("--probes", type=int, default=DEFAULT_PROBES, help="records per size")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        print(f"--sizes: whole numbers separated by commas, not {args.sizes[:100]!r}")
        return 2
    if not sizes or min(sizes) < 0 or args.probes < 1:
        print("--sizes needs at least one size >= 0, and --probes at least 1")
        return 2
    with start_broker(args.broker) as broker:
        figures = asyncio.run(measure(broker, sizes, args.probes))
    print(f"broker {args.broker}, one partition, single-record batches, {args.probes} probes each")
    print(f"{'stored batches':>15} {'broker CPU/record (us)':>23} {'round trip p50 (ms)':>20}")
    for f in figures:
        print(f"{f.stored_batches:>15,} {f.cpu_us_per_record:>23,.0f} {f.round_trip_ms:>20.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
