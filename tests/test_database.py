"""common.database on both engines: a unit of work is one transaction, run
off the event loop; rows read by name and index; a race lost between
replicas over one PostgreSQL database is run again, not reported."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from common.database import (
    Connection,
    Database,
    DatabaseUnavailable,
    IntegrityError,
    Schema,
    UniqueViolation,
    open_database,
)
from common.errors import AlreadyExists, Unavailable
from common.idempotency import SCHEMA as LEDGER
from common.idempotency import run_once
from common.processes import free_port
from common.sequences import SCHEMA as SEQUENCES
from common.sequences import next_serial
from lienthong.population.v1 import population_pb2 as pb

SCHEMA = Schema.portable(
    """
CREATE TABLE IF NOT EXISTS things (
    thing_id INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,
    size     INTEGER NOT NULL,
    body     BLOB
);
"""
    + LEDGER
    + SEQUENCES
)


@pytest.fixture
def db(store_location: str) -> Iterator[Database]:
    database = open_database(store_location, SCHEMA)
    yield database
    database.close()


def count(conn: Connection) -> int:
    row = conn.execute("SELECT count(*) FROM things").fetchone()
    assert row is not None
    return int(row[0])


def insert(conn: Connection, name: str, size: int = 1) -> None:
    conn.execute("INSERT INTO things (name, size) VALUES (?, ?)", (name, size))


async def test_a_failed_unit_of_work_leaves_nothing(db: Database) -> None:
    def half_then_fail(conn: Connection) -> None:
        insert(conn, "a")
        raise RuntimeError("refused")

    with pytest.raises(RuntimeError):
        await db.run(half_then_fail)
    assert await db.run(count) == 0
    await db.run(lambda conn: insert(conn, "b"))
    assert await db.run(count) == 1


async def test_a_row_reads_by_name_and_by_index(db: Database) -> None:
    await db.run(lambda conn: insert(conn, "cup", 3))
    row = await db.run(lambda conn: conn.execute("SELECT name, size, body FROM things").fetchone())
    assert row is not None
    assert (row["name"], row["size"], row["body"]) == ("cup", 3, None)
    assert (row[0], row[1]) == ("cup", 3)
    assert tuple(row) == ("cup", 3, None)
    assert list(row.keys()) == ["name", "size", "body"]


async def test_work_never_runs_on_the_event_loop_thread(db: Database) -> None:
    loop_thread = threading.get_ident()
    seen = await db.run(lambda conn: threading.get_ident())
    assert seen != loop_thread


async def test_placeholders_percent_signs_and_question_marks_in_literals(db: Database) -> None:
    await db.run(lambda conn: insert(conn, "50%?"))
    row = await db.run(
        lambda conn: conn.execute(
            "SELECT name || '%?' FROM things WHERE name LIKE '50%' AND size = ?", (1,)
        ).fetchone()
    )
    assert row is not None and row[0] == "50%?%?"


async def test_bytes_go_in_and_come_out_as_bytes(db: Database) -> None:
    await db.run(
        lambda conn: conn.execute(
            "INSERT INTO things (name, size, body) VALUES (?, ?, ?)", ("b", 1, b"\x00\xff")
        )
    )
    row = await db.run(lambda conn: conn.execute("SELECT body FROM things").fetchone())
    assert row is not None and bytes(row["body"]) == b"\x00\xff"


async def test_executemany_counts_the_rows_it_changed(db: Database) -> None:
    sql = "INSERT INTO things (name, size) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"
    first = await db.run(lambda conn: conn.executemany(sql, [("a", 1), ("b", 2)]))
    again = await db.run(lambda conn: conn.executemany(sql, [("b", 2), ("c", 3)]))
    assert (first, again) == (2, 1)


async def test_copy_in_loads_rows(db: Database) -> None:
    rows = [(f"n{i}", i) for i in range(1000)]
    await db.run(lambda conn: conn.copy_in("things", ("name", "size"), rows))
    assert await db.run(count) == 1000


async def test_a_unique_violation_is_one_error_type_on_both_engines(db: Database) -> None:
    await db.run(lambda conn: insert(conn, "a"))
    with pytest.raises(UniqueViolation):
        await db.run(lambda conn: insert(conn, "a"), attempts=1)
    with pytest.raises(IntegrityError):
        await db.run(
            lambda conn: conn.execute("INSERT INTO things (name, size) VALUES (?, NULL)", ("x",))
        )
    assert await db.run(count) == 1


async def test_a_counter_hands_out_each_number_once(db: Database) -> None:
    numbers = await asyncio.gather(
        *(db.run(lambda conn: next_serial(conn, "birth:X")) for _ in range(40))
    )
    assert sorted(numbers) == list(range(1, 41))
    assert await db.run(lambda conn: next_serial(conn, "other")) == 1


def test_replicas_share_counters_without_handing_out_a_number_twice(postgres_url: str) -> None:
    """Two replicas (two pools) over one database numbering under one name at
    once: the counter row's lock makes them take turns."""
    replicas = [open_database(postgres_url, SCHEMA, pool_size=4) for _ in range(2)]
    try:
        with ThreadPoolExecutor(8) as threads:
            numbers = list(
                threads.map(
                    lambda i: replicas[i % 2].run_sync(lambda conn: next_serial(conn, "n")),
                    range(200),
                )
            )
    finally:
        for replica in replicas:
            replica.close()
    assert sorted(numbers) == list(range(1, 201))


def test_replicas_create_the_schema_at_once(postgres_url: str) -> None:
    with ThreadPoolExecutor(4) as threads:
        replicas = list(
            threads.map(lambda _: open_database(postgres_url, SCHEMA, pool_size=1), range(4))
        )
    for replica in replicas:
        assert replica.run_sync(count) == 0
        replica.close()


def test_a_repeat_racing_its_original_on_another_replica_gets_the_same_answer(
    postgres_url: str,
) -> None:
    """Both replicas find no answer in the ledger and run the mutation; the
    one that commits second loses on the ledger's key, is run again, and then
    returns the first one's answer. One effect, one answer."""
    replicas = [open_database(postgres_url, SCHEMA, pool_size=2) for _ in range(2)]
    both_inside = threading.Barrier(2, timeout=10)
    calls: list[int] = []
    request = pb.RegisterDeathRequest(request_id="same", personal_id_number="001190000001")

    def unit(replica: int) -> pb.RegisterDeathResponse:
        def work(conn: Connection) -> pb.RegisterDeathResponse:
            def mutate() -> pb.RegisterDeathResponse:
                calls.append(replica)
                if len(calls) <= 2:
                    both_inside.wait()  # both have read the ledger and found nothing
                insert(conn, f"effect-{replica}")
                return pb.RegisterDeathResponse(
                    registration=pb.DeathRegistration(personal_id_number=f"answer-{replica}")
                )

            return run_once(conn, "RegisterDeath", request, pb.RegisterDeathResponse, mutate)

        return replicas[replica].run_sync(work)

    try:
        with ThreadPoolExecutor(2) as threads:
            answers = list(threads.map(unit, (0, 1)))
        effects = replicas[0].run_sync(count)
    finally:
        for replica in replicas:
            replica.close()
    assert len(calls) == 2, "both replicas ran the mutation once"
    assert answers[0] == answers[1]
    assert effects == 1


async def test_a_savepoint_undoes_its_block_and_the_work_goes_on(db: Database) -> None:
    def work(conn: Connection) -> int:
        insert(conn, "kept")
        with pytest.raises(UniqueViolation), conn.savepoint():
            insert(conn, "undone")
            insert(conn, "kept")
        return count(conn)

    assert await db.run(work) == 1
    assert await db.run(count) == 1


def test_a_repeat_refused_because_its_original_committed_meanwhile_gets_the_original_answer(
    postgres_url: str,
) -> None:
    """READ COMMITTED: the repeat reads the ledger (nothing yet), then its
    original commits on the other replica, then the repeat's rules see the
    original's row and refuse ("already done"). The refusal must not be the
    answer: the repeat runs again and returns the original's."""
    replicas = [open_database(postgres_url, SCHEMA, pool_size=2) for _ in range(2)]
    request = pb.RegisterDeathRequest(request_id="same", personal_id_number="001190000001")
    repeat_read_the_ledger = threading.Event()
    original_committed = threading.Event()

    def original(conn: Connection) -> pb.RegisterDeathResponse:
        def mutate() -> pb.RegisterDeathResponse:
            insert(conn, "the death")
            return pb.RegisterDeathResponse(
                registration=pb.DeathRegistration(personal_id_number="first")
            )

        return run_once(conn, "RegisterDeath", request, pb.RegisterDeathResponse, mutate)

    def repeat(conn: Connection) -> pb.RegisterDeathResponse:
        def mutate() -> pb.RegisterDeathResponse:
            if not repeat_read_the_ledger.is_set():
                repeat_read_the_ledger.set()
                assert original_committed.wait(10)
            if count(conn):
                raise AlreadyExists("already dead", reason="ALREADY_DEAD")
            raise AssertionError("the original's row must be visible by now")

        return run_once(conn, "RegisterDeath", request, pb.RegisterDeathResponse, mutate)

    try:
        with ThreadPoolExecutor(1) as thread:
            repeated = thread.submit(replicas[1].run_sync, repeat)
            assert repeat_read_the_ledger.wait(10)
            first = replicas[0].run_sync(original)
            original_committed.set()
            second = repeated.result(timeout=10)
    finally:
        for replica in replicas:
            replica.close()
    assert second == first


def test_a_server_that_does_not_answer_is_said_plainly() -> None:
    url = f"postgresql://someone:secret@127.0.0.1:{free_port()}/nowhere"
    with pytest.raises(DatabaseUnavailable) as raised:
        open_database(url, SCHEMA, connect_timeout=1)
    message = str(raised.value)
    assert "cannot connect to postgresql://someone:***@127.0.0.1:" in message
    assert "secret" not in message


def test_a_server_gone_mid_work_is_unavailable_not_internal(postgres_url: str) -> None:
    """The session ended under the unit of work (as when the server restarts):
    UNAVAILABLE, which a client may retry, and nothing committed."""
    db = open_database(postgres_url, SCHEMA, pool_size=1)

    def cut_off(conn: Connection) -> None:
        insert(conn, "lost")
        conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    try:
        with pytest.raises(Unavailable) as raised:
            db.run_sync(cut_off)
        assert raised.value.reason == "DATABASE_UNAVAILABLE"
        assert db.run_sync(count) == 0
    finally:
        db.close()


def test_a_process_on_sqlite_never_imports_the_postgresql_driver() -> None:
    # psycopg and its pool take ~0.2 s to import: every gateway and registry
    # start (a chaos replay restarts a gateway every 10 s) would pay it for
    # nothing. common.database imports its PostgreSQL half only for a URL.
    script = (
        "import sys\n"
        "import gateway.app, services.population.app, services.health.app, "
        "services.insurance.app\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'psycopg_pool')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
