"""What `lienthong fuzz` and the fuzz tests send to: the three registries and
the gateway's API, in a process of their own (so the fuzzer and the servers
have a core each), on 127.0.0.1 with fresh SQLite files.

Every server is started the way the real ones are (common.server.start_registry,
the same interceptor). The gateway's API publishes to a real Kafka broker (the
embedded one), but no saga worker or step executor consumes what it publishes:
the fuzz is of what a client can send at the wire, and without the background
work the only writer of each SQLite file is the RPC being answered, so a
refused call can be checked to have written nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.synchronize
import queue
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from brokers import start_broker
from cli.demo_data import EXAMPLE
from cli.fuzz_inputs import Pool, strings_by_field
from cli.seeding import seed
from common.agencies import AGENCIES, agency
from common.clock import SystemClock
from common.logging import configure_logging
from common.server import ServiceBinding, start_registry
from gateway.api import GatewayServicer
from gateway.events import Topics
from gateway.kafka import ensure_topics, make_producer, send
from gateway.outbox import Outbox
from gateway.store import open_saga_store
from lienthong.gateway.v1 import gateway_pb2 as gw
from lienthong.gateway.v1 import gateway_pb2_grpc as gw_grpc
from services.health.app import build as build_health
from services.insurance.app import build as build_insurance
from services.population.app import build as build_population

START_SECONDS = 60.0
GATEWAY = "lienthong.gateway.v1.GatewayService"
HOSPITAL = agency("health").service
POPULATION = agency("population").service
INSURANCE = agency("insurance").service
SERVICES = (HOSPITAL, POPULATION, INSURANCE, GATEWAY)


def _database(directory: Path, service: str) -> Path:
    return directory / f"{service.split('.')[1]}.sqlite3"


PUBLISH_TIMEOUT_SECONDS = 3.0


async def _serve(
    directory: Path, bootstrap: str, ports: Any, stop: multiprocessing.synchronize.Event
) -> None:
    builders: dict[str, Callable[[Path], tuple[list[ServiceBinding], Any]]] = {
        HOSPITAL: build_health,
        POPULATION: build_population,
        INSURANCE: build_insurance,
    }
    running = {}
    stores: list[Any] = []
    for service, build in builders.items():
        bindings, store = build(_database(directory, service))
        stores.append(store)
        running[service] = await start_registry(bindings)
    topics = Topics.with_prefix("fuzz")
    await ensure_topics(bootstrap, topics.all(), 1)
    producer = make_producer(bootstrap)
    await producer.start()
    dossiers = await open_saga_store(_database(directory, GATEWAY))
    # The API publishes through the outbox (stored with the dossier, then sent);
    # no relay runs here: every fuzz submission is answered before the next.
    outbox = Outbox(dossiers, timeout=PUBLISH_TIMEOUT_SECONDS)
    outbox.connect(lambda topic, event: send(producer, topic, event))
    servicer = GatewayServicer(dossiers, outbox, topics, SystemClock(), asyncio.Condition())
    running[GATEWAY] = await start_registry(
        [ServiceBinding(servicer, gw_grpc.add_GatewayServiceServicer_to_server, GATEWAY)]
    )
    ports.put({service: r.port for service, r in running.items()})
    await asyncio.get_running_loop().run_in_executor(None, stop.wait)
    for server in running.values():
        await server.stop(None)
    await producer.stop()
    for store in stores:
        store.close()
    await dossiers.close()


def _serve_process(
    directory: str, bootstrap: str, ports: Any, stop: multiprocessing.synchronize.Event
) -> None:
    # One line per refusal would be one line per input: warnings and errors
    # (a traceback, should a handler fail) only, in a file of their own.
    with open(Path(directory) / "servers.log", "w", encoding="utf-8") as log:
        sys.stdout = log
        configure_logging(service="fuzz-targets", verbose=False, json=True)
        asyncio.run(_serve(Path(directory), bootstrap, ports, stop))


@dataclass
class FuzzTargets:
    """Started servers: their addresses, their SQLite files, the values they
    were seeded with (for the fuzzer to use), and row counts."""

    directory: Path
    addresses: dict[str, str]
    pool: Pool
    _readers: dict[str, sqlite3.Connection] = field(default_factory=dict)

    def database(self, service: str) -> Path:
        return _database(self.directory, service)

    def row_counts(self, service: str) -> dict[str, int]:
        """Rows in every table of this service's SQLite file, as committed now."""
        conn = self._readers.get(service)
        if conn is None:
            uri = f"file:{self.database(service)}?mode=ro"
            conn = self._readers[service] = sqlite3.connect(uri, uri=True)
        tables = [
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}

    def close(self) -> None:
        for conn in self._readers.values():
            conn.close()
        self._readers.clear()

    def serving(self, service: str) -> bool:
        with grpc.insecure_channel(self.addresses[service]) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=10
            )
        return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)

    def server_log(self) -> str:
        return (self.directory / "servers.log").read_text(encoding="utf-8")


def _seed(addresses: dict[str, str]) -> Pool:
    """The example population, and one dossier at the gateway; returns every
    string value they hold (ID numbers, household ids, document numbers...)."""
    seed(
        {agency.name: addresses[agency.service] for agency in AGENCIES},
        EXAMPLE,
    )
    with grpc.insecure_channel(addresses[GATEWAY]) as channel:
        submitted = gw_grpc.GatewayServiceStub(channel).SubmitBirthDeclaration(
            gw.SubmitBirthDeclarationRequest(declaration=EXAMPLE.birth, idempotency_key="fuzz-1"),
            timeout=30,
        )
    messages = [
        *EXAMPLE.households,
        *EXAMPLE.citizens,
        *EXAMPLE.facilities,
        *EXAMPLE.birth_certificates,
        *EXAMPLE.death_notices,
        *EXAMPLE.participants,
        EXAMPLE.birth,
        EXAMPLE.death,
    ]
    pool = strings_by_field(messages)
    pool[""].append(submitted.dossier_id)
    pool["dossier_id"] = [submitted.dossier_id]
    return pool


def _wait_for_ports(ports: Any, child: Any, directory: Path) -> dict[str, int]:
    """The servers' ports once they listen; an error at once if the child died."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline and child.is_alive():
        try:
            found: dict[str, int] = ports.get(timeout=0.2)
        except queue.Empty:
            continue
        return found
    log = directory / "servers.log"
    tail = log.read_text(encoding="utf-8")[-2000:] if log.exists() else ""
    raise RuntimeError(f"the fuzz targets did not start:\n{tail}")


@contextlib.contextmanager
def fuzz_targets(directory: Path) -> Iterator[FuzzTargets]:
    """Start a broker and the four servers in a child process; stop both at the end."""
    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    stop = context.Event()
    with start_broker("embedded") as broker:
        child = context.Process(
            target=_serve_process,
            args=(str(directory), broker.bootstrap_servers, ports, stop),
            name="fuzz-targets",
        )
        child.start()
        try:
            found = _wait_for_ports(ports, child, directory)
            addresses = {service: f"127.0.0.1:{port}" for service, port in found.items()}
            targets = FuzzTargets(directory, addresses, _seed(addresses))
            try:
                yield targets
            finally:
                targets.close()
        finally:
            stop.set()
            child.join(timeout=30)
            if child.is_alive():
                child.kill()
                child.join()
