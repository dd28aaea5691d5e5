"""Fixtures shared by the whole suite.

Registries run in-process on 127.0.0.1:0 over real gRPC with real SQLite files
under tmp_path; each test gets its own files, so tests never see each other's
data.
"""

from __future__ import annotations

import os

# Before gRPC starts: the suite forks children (the stack's processes) while
# its own channels run, and gRPC's fork handlers then made a child abort
# between fork and exec ("epoll_wait error: Bad file descriptor"). The
# children exec at once and never use the parent's gRPC, so no handler is needed.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

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
