"""What is particular to the PostgreSQL saga store (gateway/store_postgres.py),
on a real server; what both stores do is test_saga_store_contract.py's."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from common.errors import Unavailable
from gateway.config import SessionTimeouts
from gateway.store import open_saga_store
from gateway.store_postgres import PostgresSagaStore
from tests.gateway.test_saga_store_contract import SUBMITTED, announced, new_dossier


async def test_many_gateways_opening_one_new_database_at_once_all_get_the_schema(
    postgres_url: str,
) -> None:
    # Concurrent CREATE TABLE IF NOT EXISTS of one table can fail on the
    # catalog; the advisory lock makes the openings take turns.
    stores = await asyncio.gather(*(open_saga_store(postgres_url) for _ in range(6)))
    try:
        await stores[0].apply(SUBMITTED)
        assert await stores[5].version("birth-1") is not None
    finally:
        for store in stores:
            await store.close()


async def test_every_session_carries_the_configured_timeouts(postgres_url: str) -> None:
    timeouts = SessionTimeouts(
        idle_in_transaction_seconds=4.0, lock_seconds=7.5, statement_seconds=20.0
    )
    store = await PostgresSagaStore.open(postgres_url, timeouts)
    try:
        async with store.pool.connection() as conn:
            shown = [
                (await (await conn.execute(f"SHOW {name}".encode())).fetchone() or [""])[0]
                for name in (
                    "idle_in_transaction_session_timeout",
                    "lock_timeout",
                    "statement_timeout",
                )
            ]
        assert shown == ["4s", "7500ms", "20s"]
    finally:
        await store.close()


async def test_a_lock_held_past_the_lock_timeout_is_unavailable_not_an_error(
    postgres_url: str,
) -> None:
    # E.g. a frozen gateway's transaction: the call is refused in bounded
    # time, as retryable, and the store is usable again once the lock goes.
    store = await PostgresSagaStore.open(postgres_url, SessionTimeouts(lock_seconds=0.2))
    try:
        async with await psycopg.AsyncConnection.connect(postgres_url) as holder:
            await holder.execute(b"LOCK TABLE outbox IN EXCLUSIVE MODE")
            with pytest.raises(Unavailable) as raised:
                await store.submit("k1", b"print", new_dossier("birth-k1"), announced)
            assert raised.value.reason == "STORE_UNAVAILABLE"
            await holder.rollback()
        assert await store.load("birth-k1") is None  # the refused call stored nothing
        await store.submit("k1", b"print", new_dossier("birth-k1"), announced)
        assert await store.load("birth-k1") is not None
    finally:
        await store.close()


async def test_an_unreachable_server_is_unavailable_at_open() -> None:
    with pytest.raises(psycopg.OperationalError):
        # Port 1: nothing listens. The gateway exits; its supervisor restarts it.
        await PostgresSagaStore.open("postgresql://gateway@127.0.0.1:1/saga", pool_timeout=1.0)
