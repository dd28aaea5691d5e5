"""The stack's store (cli/store.py): `--store postgres` starts a server of
the stack's own with a database per kind of process; a given server's URL
gets those databases created if missing and never dropped; replicas are
refused without a store they can share. Real PostgreSQL (tests/conftest.py)."""

from __future__ import annotations

import itertools
from pathlib import Path

import psycopg
import pytest

from cli.main import main
from cli.stack import Stack, StackError
from cli.store import StackStore, StoreError, check_store, with_database
from databases.postgres import PostgresServer

_prefixes = itertools.count(1)


def current_database(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT current_database()").fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize("value", ["sqlite", "postgres", "postgresql://u@h:5432/d"])
def test_the_store_choices(value: str) -> None:
    assert check_store(value) == value


def test_anything_else_is_refused_naming_the_choices() -> None:
    with pytest.raises(StoreError, match=r"--store: expected sqlite, postgres or a postgresql://"):
        check_store("mysql://root@db/x")


def test_a_url_keeps_its_server_user_and_options_for_another_database() -> None:
    assert (
        with_database("postgresql://u:p@h:5/base?sslmode=disable", "lienthong_health")
        == "postgresql://u:p@h:5/lienthong_health?sslmode=disable"
    )


def test_our_own_server_gets_a_database_per_kind_and_goes_with_the_stack(
    tmp_path: Path,
) -> None:
    store = StackStore("postgres", data_dir=tmp_path, prefix="lienthong")
    store.start(("gateway", "population"))
    try:
        gateway = store.location("gateway", tmp_path / "unused.sqlite3")
        population = store.location("population", tmp_path / "unused.sqlite3")
        assert current_database(gateway) == "lienthong_gateway"
        assert current_database(population) == "lienthong_population"
        assert store.pid is not None
        assert store.describe().startswith("postgres (ours: postgresql://lienthong@127.0.0.1:")
    finally:
        store.stop(remove=True)
    assert store.pid is None
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(gateway, connect_timeout=2)


def test_a_given_server_gets_the_databases_it_lacks_and_keeps_what_they_hold(
    postgres_server: PostgresServer,
) -> None:
    prefix = f"store{next(_prefixes)}"
    server_url = postgres_server.url("postgres")
    first = StackStore(server_url, data_dir=Path("unused"), prefix=prefix)
    first.start(("gateway",))
    url = first.location("gateway", Path("unused"))
    assert current_database(url) == f"{prefix}_gateway"
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE kept (n INTEGER)")
        conn.execute("INSERT INTO kept VALUES (7)")
    first.stop(remove=True)  # not ours: nothing to stop, nothing dropped
    # A second stack on the same server: its database is there, with its rows.
    again = StackStore(server_url, data_dir=Path("unused"), prefix=prefix)
    again.start(("gateway",))
    with psycopg.connect(again.location("gateway", Path("unused"))) as conn:
        assert conn.execute("SELECT n FROM kept").fetchall() == [(7,)]
    postgres_server.drop_database(f"{prefix}_gateway")


def test_a_server_that_does_not_answer_is_said_with_its_url_redacted() -> None:
    store = StackStore(
        "postgresql://someone:secret@127.0.0.1:1/x", data_dir=Path("unused"), prefix="l"
    )
    with pytest.raises(StoreError) as raised:
        store.start(("gateway",))
    message = str(raised.value)
    assert message.startswith("PostgreSQL at postgresql://someone:***@127.0.0.1:1/x: ")
    assert "secret" not in message


def test_replicas_need_a_store_they_can_share() -> None:
    with pytest.raises(StackError, match="2 replicas of a registry need a store they can share"):
        Stack(broker=None, replicas=2)


def test_the_cli_refuses_replicas_over_sqlite_as_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["up", "--replicas", "2", "--data-dir", str(tmp_path)])
    assert code == 2
    error = " ".join(capsys.readouterr().err.split())
    assert "--store postgres (or a postgresql:// URL); SQLite is one file on one host" in error


def test_the_cli_refuses_an_unknown_store(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["demo", "--store", "oracle"])
    assert raised.value.code == 2
    assert "expected sqlite, postgres or a postgresql://" in capsys.readouterr().err
