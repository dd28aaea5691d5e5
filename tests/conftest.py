"""Fixtures shared by the whole suite.

Registries run in-process on 127.0.0.1:0 over real gRPC with real SQLite files
under tmp_path; each test gets its own files, so tests never see each other's
data.

PostgreSQL: one real server per pytest process (`postgres_server`, started on
first use), and a fresh, empty database on it per test (`postgres_url`).
Without PostgreSQL's binaries those tests are skipped, saying why, unless CI
is set: CI must not pass by skipping them.
"""

from __future__ import annotations

import os

# Read when gRPC starts, so before it is imported. The tests spawn processes
# (a Stack's registries, brokers, gateways) while gRPC runs in this one. With
# gRPC's fork support on, a spawned registry sometimes aborted within
# milliseconds of the fork, before it could have exec'd ("epoll_wait error:
# Bad file descriptor": gRPC apparently working in the forked child while it
# closes its inherited descriptors): in about half the runs that followed
# test_broker_outage.py, in none of nine with it off. Our children exec at
# once and need nothing of this process's gRPC.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from common.server import RunningRegistry, ServiceBinding, start_registry
from databases import PostgresBinaries, PostgresServer
from databases.postgres import database_name_for
from tests.postgres_binaries import binaries_or_skip

Builder = Callable[[Path], tuple[list[ServiceBinding], Any]]


class Registry:
    """A running registry and a channel to it."""

    def __init__(self, running: RunningRegistry, channel: grpc.aio.Channel, store: Any) -> None:
        self.running = running
        self.channel = channel
        self.store = store

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.running.port}"


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Callable[[Builder], Any]]:
    """start(build) → Registry; everything started is stopped at the end."""
    started: list[Registry] = []

    async def _start(build: Builder, database: Path | None = None) -> Registry:
        bindings, store = build(database or tmp_path / f"registry-{len(started)}.sqlite3")
        running = await start_registry(bindings)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
        registry = Registry(running, channel, store)
        started.append(registry)
        return registry

    yield _start
    for registry in started:
        await registry.channel.close()
        await registry.running.stop(None)
        registry.store.close()


@pytest.fixture(scope="session")
def postgres_binaries() -> PostgresBinaries:
    """initdb and postgres; skips (fails under CI) when this machine has none."""
    return binaries_or_skip()


@pytest.fixture(scope="session")
def postgres_server(
    postgres_binaries: PostgresBinaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PostgresServer]:
    """A PostgreSQL server for this pytest process, removed at the end."""
    server = PostgresServer(
        tmp_path_factory.mktemp("postgres") / "data", binaries=postgres_binaries
    )
    server.start()
    try:
        yield server
    finally:
        # Also the cluster kept outside the temporary directory when we are root.
        server.remove()


_database_numbers = itertools.count(1)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a new, empty database named after the test, dropped afterwards."""
    name = database_name_for(request.node.name, prefix=f"t{next(_database_numbers)}_")
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgres"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store under test lives, once per engine: a SQLite file in the
    test's own directory, or a new PostgreSQL database (`postgres_url`)."""
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite3")
    return str(request.getfixturevalue("postgres_url"))
