"""What is particular to the SQLite saga store (gateway/store_sqlite.py); what
both stores do is tests/gateway/test_saga_store_contract.py's."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from gateway.store import open_saga_store
from gateway.store_sqlite import SqliteSagaStore
from lienthong.gateway.v1 import gateway_pb2 as pb
from tests.gateway.test_saga_store_contract import SUBMITTED


async def test_a_writer_lock_held_elsewhere_blocks_the_store_thread_not_the_loop(
    tmp_path: Path,
) -> None:
    # Another process holds SQLite's write lock (e.g. a gateway frozen in
    # its transaction): the store waits for it on its thread while the event
    # loop goes on (heartbeats, other calls), then applies.
    path = tmp_path / "gateway.sqlite3"
    store = await open_saga_store(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        applying = asyncio.create_task(store.apply(SUBMITTED))
        ticks = 0
        while ticks < 20:  # 0.2 s of the loop running while the store waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert not applying.done()
    finally:
        other.execute("ROLLBACK")
        other.close()
    applied = await asyncio.wait_for(applying, 10)
    assert applied.dossier is not None and applied.dossier.state == pb.DOSSIER_STATE_IN_PROGRESS
    await store.close()


async def test_the_file_is_one_a_plain_sqlite_client_reads(tmp_path: Path) -> None:
    # What operators (and gateway/metrics.py) rely on: plain tables.
    store = await open_saga_store(tmp_path / "gateway.sqlite3")
    assert isinstance(store, SqliteSagaStore)
    await store.apply(SUBMITTED)
    await store.close()
    conn = sqlite3.connect(tmp_path / "gateway.sqlite3")
    assert conn.execute("SELECT dossier_id, state FROM dossiers").fetchall() == [
        ("birth-1", pb.DOSSIER_STATE_IN_PROGRESS)
    ]
    conn.close()
