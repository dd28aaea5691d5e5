"""Fixtures the gateway's end-to-end modules share; each module brings its
own `stack` (its own gateway settings)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from cli.stack import Stack
from tests.gateway.world import open_channels


@pytest.fixture
async def channels(stack: Stack) -> AsyncIterator[dict[str, grpc.aio.Channel]]:
    # gRPC channels reconnect by themselves: these outlive a gateway restart.
    opened = open_channels(stack)
    yield opened
    for channel in opened.values():
        await channel.close()
