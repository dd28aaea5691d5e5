"""Readiness: wait, with a deadline, until a broker answers Kafka metadata requests.

The public API is synchronous (the CLI supervisor and pytest fixtures call it),
so each probe runs its own short event loop with aiokafka's client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import subprocess
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.transaction import InitProducerIdRequest

from brokers._core import BrokerStartError
from brokers._process import describe_logs, exit_description

T = TypeVar("T")

# Between probes. A probe is a TCP connect on a closed port (instant) until the
# broker listens, so polling this often costs nothing and keeps starts quick.
_POLL_SECONDS = 0.1
_PROBE_SECONDS = 5.0


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, also when the caller is itself inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # asyncio.run refuses to nest: run the probe's loop in a helper thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _addresses(bootstrap_servers: str) -> list[tuple[str, int]]:
    out = []
    for item in bootstrap_servers.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise BrokerStartError(
                f"bad bootstrap server {item.strip()!r} in {bootstrap_servers!r}: want host:port"
            )
        out.append((host.strip("[]"), int(port)))
    return out


def _listening(addresses: Sequence[tuple[str, int]]) -> bool:
    """Cheap pre-check: aiokafka logs an ERROR for every refused bootstrap."""
    for address in addresses:
        try:
            with socket.create_connection(address, timeout=1.0):
                return True
        except OSError:
            continue
    return False


async def _metadata_answers(bootstrap_servers: str, limit: float) -> bool:
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap_servers,
        client_id="lienthong-broker-probe",
        request_timeout_ms=int(limit * 1000),
    )
    try:
        await asyncio.wait_for(client.bootstrap(), limit)
        # A KRaft broker can accept connections before it has registered itself.
        return bool(client.cluster.brokers())
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await client.close()


def answers(bootstrap_servers: str, timeout: float = _PROBE_SECONDS) -> bool:
    """True if some bootstrap server answers a metadata request listing a broker."""
    if not _listening(_addresses(bootstrap_servers)):
        return False
    return run_sync(_metadata_answers(bootstrap_servers, timeout))


def wait_until_answers(
    bootstrap_servers: str,
    *,
    timeout: float,
    what: str,
    process: subprocess.Popen[bytes] | None = None,
    logs: Sequence[Path] = (),
) -> None:
    """Block until the broker answers, or raise BrokerStartError with the logs' tail.

    With ``process``, fail at once if it exits, rather than at the deadline.
    """
    addresses = _addresses(bootstrap_servers)
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise BrokerStartError(
                f"{what} {exit_description(process)} before it answered at {bootstrap_servers}"
                + describe_logs(logs)
            )
        remaining = deadline - time.monotonic()
        if _listening(addresses) and run_sync(
            _metadata_answers(bootstrap_servers, max(0.5, min(_PROBE_SECONDS, remaining)))
        ):
            return
        if time.monotonic() >= deadline:
            raise BrokerStartError(
                f"{what} did not answer Kafka metadata requests at {bootstrap_servers} "
                f"within {timeout:g} seconds" + describe_logs(logs)
            )
        if process is None:
            time.sleep(_POLL_SECONDS)
        else:
            # Doubles as the poll interval and an early exit if the broker dies.
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=_POLL_SECONDS)


async def _init_producer_id_ok(bootstrap_servers: str, limit: float) -> bool:
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap_servers,
        client_id="lienthong-broker-probe",
        request_timeout_ms=int(limit * 1000),
    )
    deadline = time.monotonic() + limit
    try:
        await asyncio.wait_for(client.bootstrap(), limit)
        node_id = next(iter(client.cluster.brokers())).nodeId
        while True:
            # What an idempotent producer sends first; transactional_id=None asks
            # for a plain producer id. Tansu lists the API but answers UnknownError.
            response = await asyncio.wait_for(
                client.send(node_id, InitProducerIdRequest(None, 60_000)), limit
            )
            if response.error_code == 0:
                return True
            # COORDINATOR_LOAD_IN_PROGRESS / NOT_COORDINATOR (14, 16) and similar
            # retriable codes happen while a fresh Kafka loads its state.
            if response.error_code not in (7, 14, 15, 16) or time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_POLL_SECONDS)
    except (KafkaError, OSError, TimeoutError, StopIteration):
        return False
    finally:
        await client.close()


def supports_idempotence(bootstrap_servers: str, timeout: float = _PROBE_SECONDS) -> bool:
    """Ask the broker for a producer id, as an idempotent producer would."""
    return run_sync(_init_producer_id_ok(bootstrap_servers, timeout))
