"""INTERIM, until databases/ (helper pglaunch) lands with the `postgres_server`
and `postgres_url` fixtures in tests/conftest.py: the same `postgres_url`
over a server already running at LIENTHONG_TEST_POSTGRES (a URL of its
maintenance database). Test modules import the fixture from here; delete
this module and those imports once conftest has it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

SERVER = os.environ.get("LIENTHONG_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:55460/postgres")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty database for one test."""
    try:
        admin = psycopg.connect(SERVER, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        pytest.skip(f"no PostgreSQL at LIENTHONG_TEST_POSTGRES ({error})")
    name = f"t_{uuid.uuid4().hex[:16]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    yield SERVER.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(SERVER, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
