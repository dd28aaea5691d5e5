"""`lienthong events tail TOPIC`: the gateway's Kafka events as they arrive, decoded.

For a team that consumes `<prefix>.dossier-settled`, or anyone who wants to
see a saga at work: one line per record, its CloudEvents time, key (the
dossier id), CloudEvents type and the protobuf value as compact JSON (proto
field names), with personal ID numbers masked the way every log line masks
them. The contract it reads by is proto/asyncapi.yaml.

It reads every partition of the topic without a consumer group: it commits
nothing and takes no partition from anyone. Partitions are read side by
side, so the lines of one dossier are in order and those of different
dossiers may interleave.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from google.protobuf import json_format

from cli.errors import EXIT_BAD_INPUT, CliError
from cli.state import default_data_dir, read_state
from common.logging import mask_id_number
from common.quoting import quote
from gateway.config import GatewayConfig
from gateway.events import PoisonEventError, Topics, decode


def topic_name(name: str, prefix: str) -> str:
    """The topic TOPIC means: a short name (`dossier-settled`) under the
    prefix, or a whole name (`lienthong.dossier-settled`, any prefix)."""
    topics = Topics.with_prefix(prefix).all()
    short_names = [t.removeprefix(f"{prefix}.") for t in topics]
    if name in topics:
        return name
    if f"{prefix}.{name}" in topics:
        return f"{prefix}.{name}"
    if any(name.endswith(f".{short}") for short in short_names):
        return name  # another deployment's prefix, given whole
    raise CliError(
        f"no gateway topic is called {quote(name)}",
        [
            "the topics: " + ", ".join(short_names),
            f"a short name is put under the prefix {quote(prefix)} "
            "(LIENTHONG_TOPIC_PREFIX); a whole name is taken as it is",
        ],
        code=EXIT_BAD_INPUT,
    )


def bootstrap_servers(explicit: str | None, data_dir: Path | None) -> tuple[str, str]:
    """The broker to read from, and where that address came from: --bootstrap,
    else $KAFKA_BOOTSTRAP_SERVERS, else the running stack's (stack.json)."""
    if explicit:
        return explicit, "--bootstrap"
    from_env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if from_env:
        return from_env, "KAFKA_BOOTSTRAP_SERVERS"
    directory = data_dir or default_data_dir()
    stack = read_state(directory)
    if stack is not None and stack.bootstrap_servers:
        return stack.bootstrap_servers, str(directory / "stack.json")
    raise CliError(
        f"no broker to read from: no running stack in {directory}",
        [
            "start one with `lienthong up`, or pass --bootstrap HOST:PORT",
            "(docker compose: --bootstrap localhost:29092)",
        ],
    )


def event_line(record: ConsumerRecord[bytes, bytes]) -> str:
    """One record as one line: time, key, type, the value as compact JSON.
    A record that does not decode is shown with the reason, not skipped:
    on the dead-letter topic that is the point."""
    headers = {name: raw.decode(errors="replace") for name, raw in record.headers}
    key = record.key.decode(errors="replace") if record.key is not None else "-"
    try:
        event = decode(record.key, record.value, tuple(record.headers))
        when = event.time.isoformat()
        body = json.dumps(
            json_format.MessageToDict(event.message, preserving_proto_field_name=True),
            ensure_ascii=False,
            separators=(",", ":"),
        )
        kind = event.type
    except PoisonEventError as why:
        when = headers.get("ce_time") or dt.datetime.fromtimestamp(
            record.timestamp / 1000, dt.UTC
        ).isoformat(timespec="milliseconds")
        kind = headers.get("ce_type", "-")
        body = f"(not decoded: {why})"
    line = f"{when} {key} {kind} {body}"
    if "x-deadletter-reason" in headers:
        line += (
            f" (dead letter from {headers.get('x-deadletter-origin', '?')}:"
            f" {headers['x-deadletter-reason']})"
        )
    # A 12-digit run never reaches the screen whole, as in the logs.
    return mask_id_number(line)


async def tail(
    bootstrap: str,
    topic: str,
    *,
    from_beginning: bool,
    limit: int | None,
    write: Callable[[str], None],
    following: Callable[[int], None] = lambda partitions: None,
    source: str = "",
) -> int:
    """Write each record of `topic` as a line until `limit` lines (or for
    ever); `following` is told once the start positions are fixed, so a
    record produced after it is never missed; `source` says where the
    address came from, for the error. Returns the lines written."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        # Tansu answers a fetch only when its wait is over: a short one keeps
        # the tail live.
        fetch_max_wait_ms=100,
    )
    try:
        await consumer.start()
    except KafkaError:
        await consumer.stop()
        raise CliError(
            f"cannot reach Kafka at {bootstrap}" + (f" (from {source})" if source else ""),
            ["is the stack running? (`lienthong up`), or pass --bootstrap HOST:PORT"],
        ) from None
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer.topics()  # a metadata refresh: the topic may be new
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise CliError(
                f"Kafka at {bootstrap} has no topic {topic}",
                ["the gateway creates its topics when it starts: is it running?"],
            )
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        if from_beginning:
            await consumer.seek_to_beginning(*assigned)
        else:
            await consumer.seek_to_end(*assigned)
        for tp in assigned:
            await consumer.position(tp)  # resolves the seek now, not at the first fetch
        following(len(assigned))
        written = 0
        while limit is None or written < limit:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp in sorted(batches, key=lambda tp: tp.partition):
                for record in batches[tp]:
                    if limit is not None and written >= limit:
                        break
                    write(event_line(record))
                    written += 1
        return written
    finally:
        await consumer.stop()


def run_events_tail(
    *,
    topic: str,
    bootstrap: str | None,
    data_dir: Path | None,
    from_beginning: bool,
    limit: int | None,
) -> int:
    prefix = GatewayConfig.from_env().topic_prefix
    name = topic_name(topic, prefix)
    address, source = bootstrap_servers(bootstrap, data_dir)

    def write(line: str) -> None:
        # Plain lines, flushed one by one: a pipe sees each event as it comes.
        print(line, flush=True)

    def following(partitions: int) -> None:
        start = "from the beginning" if from_beginning else "from now on"
        print(
            f"following {name} ({partitions} partitions) at {address} ({source}), {start}",
            file=sys.stderr,
            flush=True,
        )

    asyncio.run(
        tail(
            address,
            name,
            from_beginning=from_beginning,
            limit=limit,
            write=write,
            following=following,
            source=source,
        )
    )
    return 0
