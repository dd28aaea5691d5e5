"""Fixtures the gateway's end-to-end modules share; each module brings its
own `stack` (its own gateway settings)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

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


# STOPGAP until databases/ (helper pglaunch) is on main: a fresh database per
# test on a server started by hand, named by LIENTHONG_TEST_POSTGRES (an
# admin URL). Replaced by the suite-wide `postgres_url` of tests/conftest.py.
@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    import os  # noqa: PLC0415
    import re  # noqa: PLC0415

    import psycopg  # noqa: PLC0415

    admin = os.environ.get("LIENTHONG_TEST_POSTGRES")
    if not admin:
        pytest.skip("LIENTHONG_TEST_POSTGRES is not set (stopgap until databases/ lands)")
    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())
        conn.execute(f"CREATE DATABASE {name}".encode())
    yield admin.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())
