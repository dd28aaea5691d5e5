"""A repeat racing its original on another replica over one PostgreSQL
database, in the order READ COMMITTED allows and the ledger's key cannot
catch: the repeat reads the ledger (no answer yet), the original commits, and
only then does the repeat read what the rules decide on (the effect is
there). Without more, the repeat is refused for its own effect (a funeral
allowance "already settled" to the one who asked for it). A repeat must get
the first answer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from common.database import Connection, Database, Schema, open_database
from common.errors import AlreadyExists
from common.idempotency import SCHEMA as LEDGER
from common.idempotency import run_once
from lienthong.insurance.v1 import insurance_pb2 as pb

SCHEMA = Schema.portable(
    """
CREATE TABLE IF NOT EXISTS allowances (
    personal_id_number TEXT PRIMARY KEY,
    settled_by         TEXT NOT NULL
);
"""
    + LEDGER
)
DEADLINE_SECONDS = 10


@pytest.fixture
def replicas(postgres_url: str) -> Iterator[list[Database]]:
    opened = [open_database(postgres_url, SCHEMA, pool_size=2) for _ in range(2)]
    yield opened
    for replica in opened:
        replica.close()


def settle(conn: Connection, replica: str) -> pb.SettleFuneralAllowanceResponse:
    """The rule: one allowance per person; a second is refused."""
    if conn.execute("SELECT 1 FROM allowances WHERE personal_id_number = 'P'").fetchone():
        raise AlreadyExists("already settled", reason="ALLOWANCE_ALREADY_SETTLED")
    conn.execute("INSERT INTO allowances VALUES ('P', ?)", (replica,))
    return pb.SettleFuneralAllowanceResponse(
        allowance=pb.FuneralAllowance(personal_id_number="P", payment_reference=replica)
    )


def test_a_repeat_that_read_the_ledger_before_the_original_committed_gets_its_answer(
    replicas: list[Database], postgres_url: str
) -> None:
    request = pb.SettleFuneralAllowanceRequest(request_id="same", personal_id_number="P")
    repeat_read_the_ledger = threading.Event()
    original_done = threading.Event()
    server = psycopg.connect(postgres_url, autocommit=True)

    def original_is_waiting_for_a_lock() -> bool:
        row = server.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()
        return row is not None and row[0] > 0

    def repeat(conn: Connection) -> pb.SettleFuneralAllowanceResponse:
        def mutate() -> pb.SettleFuneralAllowanceResponse:
            # Past the ledger, before the rule's read: let the original run
            # to its commit, or to where it waits for this transaction.
            repeat_read_the_ledger.set()
            deadline = time.monotonic() + DEADLINE_SECONDS
            while not (original_done.wait(0.02) or original_is_waiting_for_a_lock()):
                assert time.monotonic() < deadline, "the original neither finished nor waited"
            return settle(conn, "repeat")

        return run_once(conn, "Settle", request, pb.SettleFuneralAllowanceResponse, mutate)

    def original(conn: Connection) -> pb.SettleFuneralAllowanceResponse:
        return run_once(
            conn,
            "Settle",
            request,
            pb.SettleFuneralAllowanceResponse,
            lambda: settle(conn, "first"),
        )

    with server, ThreadPoolExecutor(2) as threads:
        # One attempt for the repeat: only its first run has the race.
        second = threads.submit(replicas[1].run_sync, repeat, attempts=1)
        assert repeat_read_the_ledger.wait(DEADLINE_SECONDS)
        try:
            first = replicas[0].run_sync(original)
        finally:
            original_done.set()
        answers = [first, second.result(timeout=DEADLINE_SECONDS)]
    assert answers[0] == answers[1]
    settled = replicas[0].run_sync(
        lambda conn: conn.execute("SELECT count(*) FROM allowances").fetchone()
    )
    assert settled is not None and settled[0] == 1
