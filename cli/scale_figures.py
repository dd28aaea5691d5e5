"""What one bench trial did per unit of scale: dossiers per partition per
second, steps per gateway, calls per registry replica per second.

These are the figures to extrapolate from (README, "Scale-out"): a dossier
lives on one partition (keyed by its id) and a partition on one gateway at a
time, so the partitions bound how many gateways can help; each replica's
calls/s says what one registry process carried. They are measured from
outside the code they describe: the settled topic's end offsets per
partition (the stack is fresh, so every settled event is this trial's), and
each process's own Prometheus counters, scraped over HTTP.
"""

from __future__ import annotations

import asyncio
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from cli.stack import Stack
from gateway.events import Topics

SCRAPE_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class ScaleFigures:
    seconds: float
    # partition → dossiers settled there during the trial
    settled_by_partition: dict[int, int] = field(default_factory=dict)
    # component (population-2...) → agency calls it answered (seeding left out)
    calls_by_replica: dict[str, int] = field(default_factory=dict)
    # gateway process → steps it ran
    steps_by_gateway: dict[str, int] = field(default_factory=dict)

    def per_partition_per_s(self) -> dict[int, float]:
        return {p: n / self.seconds for p, n in self.settled_by_partition.items()}

    def per_replica_per_s(self) -> dict[str, float]:
        return {r: n / self.seconds for r, n in self.calls_by_replica.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 2),
            "settled_by_partition": self.settled_by_partition,
            "dossiers_per_partition_per_s": {
                p: round(v, 2) for p, v in self.per_partition_per_s().items()
            },
            "calls_by_replica": self.calls_by_replica,
            "calls_per_replica_per_s": {
                r: round(v, 1) for r, v in self.per_replica_per_s().items()
            },
            "steps_by_gateway": self.steps_by_gateway,
        }

    def describe(self) -> list[str]:
        lines = []
        partitions = self.per_partition_per_s()
        if partitions:
            rates = sorted(partitions.values())
            lines.append(
                f"    {len(partitions)} partitions: {sum(rates) / len(rates):,.1f} dossiers/s "
                f"each on average (min {rates[0]:,.1f}, max {rates[-1]:,.1f})"
            )
        if self.calls_by_replica:
            said = ", ".join(f"{r} {v:,.0f}" for r, v in self.per_replica_per_s().items())
            lines.append(f"    calls/s per registry process: {said}")
        if self.steps_by_gateway:
            said = ", ".join(f"{g} {n:,}" for g, n in self.steps_by_gateway.items())
            lines.append(f"    steps per gateway: {said}")
        return lines


def scrape(address: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """A process's metrics: sample name → [(labels, value)]."""
    with urllib.request.urlopen(
        f"http://{address}/metrics", timeout=SCRAPE_TIMEOUT_SECONDS
    ) as answer:
        text = answer.read().decode("utf-8")
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


async def settled_by_partition(bootstrap_servers: str, topic: str) -> dict[int, int]:
    """Each partition's end offset: how many settled events it holds."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [
        TopicPartition(topic, p["partition"])
        for t in described
        if t["topic"] == topic
        for p in t["partitions"]
    ]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {tp.partition: int(offset) for tp, offset in sorted(ends.items())}


def measure(stack: Stack, seconds: float) -> ScaleFigures:
    """The figures of a trial that just ran on `stack` for `seconds`."""
    calls: dict[str, int] = {}
    steps: dict[str, int] = {}
    for name, component in stack.components.items():
        if not component.running():
            continue
        samples = scrape(component.metrics_address)
        if component.is_gateway:
            steps[name] = int(sum(v for _, v in samples.get("lienthong_steps_total", [])))
        else:
            calls[name] = int(
                sum(
                    value
                    for labels, value in samples.get("lienthong_rpc_calls_total", [])
                    # The load's calls, not the bulk seeding before it.
                    if not labels.get("method", "").startswith("Seed")
                )
            )
    by_partition: dict[int, int] = {}
    if stack.bootstrap_servers is not None:
        topic = Topics.with_prefix(stack.topic_prefix).settled
        by_partition = asyncio.run(settled_by_partition(stack.bootstrap_servers, topic))
    return ScaleFigures(seconds, by_partition, calls, steps)
