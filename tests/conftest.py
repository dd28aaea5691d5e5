"""Fixtures shared by the whole suite.

Registries run in-process on 127.0.0.1:0 over real gRPC with real SQLite files
under tmp_path; each test gets its own files, so tests never see each other's
data.
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

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from common.server import RunningRegistry, ServiceBinding, start_registry

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
