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


# STOPGAP until databases/ (helper pglaunch) is on main: a server started by
# hand, named by LIENTHONG_TEST_POSTGRES (an admin URL), with the fixtures'
# names and the part of PostgresServer used here. Replaced by the suite-wide
# `postgres_server` and `postgres_url` of tests/conftest.py.
class _HandStartedServer:
    def __init__(self, admin: str) -> None:
        self.admin = admin

    def _admin(self, sql: str) -> None:
        import psycopg  # noqa: PLC0415

        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(sql.encode())

    def create_database(self, name: str) -> str:
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self._admin(f"CREATE DATABASE {name}")
        return self.admin.rsplit("/", 1)[0] + "/" + name

    def drop_database(self, name: str) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def postgres_server() -> _HandStartedServer:
    import os  # noqa: PLC0415

    admin = os.environ.get("LIENTHONG_TEST_POSTGRES")
    if not admin:
        pytest.skip("LIENTHONG_TEST_POSTGRES is not set (stopgap until databases/ lands)")
    return _HandStartedServer(admin)


@pytest.fixture
def postgres_url(
    postgres_server: _HandStartedServer, request: pytest.FixtureRequest
) -> Iterator[str]:
    import re  # noqa: PLC0415

    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50]
    yield postgres_server.create_database(name)
    postgres_server.drop_database(name)
