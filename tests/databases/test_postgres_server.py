"""PostgresServer against the real PostgreSQL binaries: start, connect, stop,
restart on the same data, crashes of the client and of the server, ports,
failures that say why, and running as root."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from common.processes import port_in_use
from databases import PostgresBinaries, PostgresError, PostgresServer, postgres
from databases.postgres import database_name_for
from databases.unprivileged import sweep_orphans
from tests.databases._kit import accepts_connections, process_uid, wait_until
from tests.processes import alive

ROOT = Path(__file__).resolve().parents[2]
as_root_only = pytest.mark.skipif(os.geteuid() != 0, reason="only root's runs move the cluster")


@pytest.fixture
def fresh(postgres_binaries: PostgresBinaries, tmp_path: Path) -> Iterator[PostgresServer]:
    """A server of the test's own (not started), on a data directory under tmp_path."""
    server = PostgresServer(tmp_path / "pg", binaries=postgres_binaries)
    yield server
    server.remove()


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every account may walk into (tmp_path is closed to all but us)."""
    path = Path(tempfile.mkdtemp(prefix="lienthong-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _rows(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT note FROM notes ORDER BY note").fetchall()]


def _write_note(url: str, note: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS notes (note text PRIMARY KEY)")
        conn.execute("INSERT INTO notes VALUES (%s)", (note,))


def test_starts_accepts_connections_and_stops(fresh: PostgresServer) -> None:
    fresh.start()
    pid, port = fresh.pid, fresh.port
    assert pid is not None and alive(pid)
    assert port_in_use(port)
    # Left open across the stop: a pool elsewhere may never let go.
    idle = psycopg.connect(f"postgresql://lienthong@127.0.0.1:{port}/postgres")
    row = idle.execute("SELECT current_user, current_database()").fetchone()
    assert row == ("lienthong", "postgres")

    fresh.stop(grace_seconds=10)
    idle.close()
    assert not fresh.is_running()
    # PostgreSQL's own word that the shutdown was clean (not the SIGKILL after the grace).
    assert "database system is shut down" in fresh.log_file.read_text()
    assert not alive(pid)
    assert not port_in_use(port)
    assert not accepts_connections(f"postgresql://lienthong@127.0.0.1:{port}/postgres")


def test_settings_are_those_of_a_simulator(postgres_server: PostgresServer) -> None:
    with postgres_server.connect() as conn:
        shown = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in (
                "fsync",
                "synchronous_commit",
                "max_connections",
                "listen_addresses",
                "server_encoding",
                "lc_collate",
            )
        }
    assert shown == {
        "fsync": "off",
        "synchronous_commit": "on",
        "max_connections": "300",
        "listen_addresses": "127.0.0.1",
        "server_encoding": "UTF8",
        "lc_collate": "C",
    }


def test_url_names_the_server_and_database(postgres_server: PostgresServer) -> None:
    port = postgres_server.port
    assert postgres_server.url("gateway") == f"postgresql://lienthong@127.0.0.1:{port}/gateway"


def test_create_database_is_idempotent(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database("idempotent_create")
    try:
        _write_note(url, "kept")
        assert postgres_server.create_database("idempotent_create") == url
        assert _rows(url) == ["kept"]
    finally:
        postgres_server.drop_database("idempotent_create")
    assert not accepts_connections(url)


def test_creators_racing_for_one_database_all_get_it(postgres_server: PostgresServer) -> None:
    start = threading.Barrier(4)
    urls: list[str] = []
    errors: list[BaseException] = []

    def create() -> None:
        start.wait()
        try:
            urls.append(postgres_server.create_database("raced_for"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == []
        assert len(set(urls)) == 1 and len(urls) == 4
        assert accepts_connections(urls[0])
    finally:
        postgres_server.drop_database("raced_for")


@pytest.mark.parametrize("turn", [1, 2])
def test_each_test_gets_an_empty_database(postgres_url: str, turn: int) -> None:
    """Both turns create the same table: the second fails if a database were reused."""
    with psycopg.connect(postgres_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
        assert tables == (0,)
        conn.execute("CREATE TABLE marker (turn int)")


# The client commits one row, leaves a second uncommitted, says so, and waits to be killed.
_CLIENT = textwrap.dedent(
    """
    import sys, psycopg
    with psycopg.connect(sys.argv[1]) as committed:
        committed.execute("CREATE TABLE notes (note text PRIMARY KEY)")
        committed.execute("INSERT INTO notes VALUES ('committed')")
    pending = psycopg.connect(sys.argv[1])
    pending.execute("INSERT INTO notes VALUES ('uncommitted')")
    print("ready", flush=True)
    sys.stdin.read()
    """
)


def test_a_committed_row_survives_the_client_being_killed(postgres_url: str) -> None:
    client = subprocess.Popen(
        [sys.executable, "-c", _CLIENT, postgres_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout is not None
        assert client.stdout.readline().strip() == "ready"
        client.send_signal(signal.SIGKILL)
        assert client.wait(timeout=30) == -signal.SIGKILL
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert _rows(postgres_url) == ["committed"]


def test_data_survives_a_restart_on_the_same_directory(
    postgres_binaries: PostgresBinaries, fresh: PostgresServer
) -> None:
    fresh.start()
    _write_note(fresh.create_database("kept"), "before the restart")
    fresh.stop()

    again = PostgresServer(fresh.data_dir, binaries=postgres_binaries)
    with again:
        url = again.create_database("kept")
        assert _rows(url) == ["before the restart"]
        _write_note(url, "after the restart")
    with again:
        assert _rows(again.url("kept")) == ["after the restart", "before the restart"]


def test_committed_rows_survive_the_server_being_killed(fresh: PostgresServer) -> None:
    """fsync=off: a commit has reached the OS, so a SIGKILLed server loses nothing."""
    fresh.start()
    url = fresh.create_database("crash")
    _write_note(url, "committed before the crash")
    pid = fresh.pid
    assert pid is not None
    fresh.kill()
    assert not alive(pid)
    fresh.start()
    assert _rows(url) == ["committed before the crash"]


def test_a_taken_port_is_refused_before_anything_starts(
    postgres_binaries: PostgresBinaries, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = PostgresServer(tmp_path / "pg", port, binaries=postgres_binaries)
        with pytest.raises(PostgresError, match=f"port {port} on 127.0.0.1 is already in use"):
            server.start()
    assert not server.is_running()
    assert not (tmp_path / "pg").exists()


def test_a_server_that_cannot_start_says_why(
    fresh: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(postgres.SERVER_SETTINGS, "max_connections", "many")
    with pytest.raises(PostgresError) as caught:
        fresh.start()
    message = str(caught.value)
    assert f"postgres on 127.0.0.1:{fresh.port} exited with code 1 before it accepted" in message
    assert f"--- last lines of {fresh.log_file} ---" in message
    assert 'invalid value for parameter "max_connections": "many"' in message
    assert not fresh.is_running()


def test_a_directory_that_is_no_cluster_is_left_alone(
    postgres_binaries: PostgresBinaries, open_dir: Path
) -> None:
    data = open_dir / "pg"
    data.mkdir()
    (data / "notes.txt").write_text("mine")
    with pytest.raises(PostgresError, match="neither empty nor a PostgreSQL data directory"):
        PostgresServer(data, binaries=postgres_binaries).start()
    assert [p.name for p in data.iterdir()] == ["notes.txt"]


def test_database_names_are_checked(postgres_server: PostgresServer) -> None:
    with pytest.raises(ValueError, match="longer than PostgreSQL's 63 bytes"):
        postgres_server.create_database("x" * 64)
    with pytest.raises(ValueError, match="must not be empty"):
        postgres_server.create_database("")
    assert database_name_for("test_it[a-b C]", prefix="t1_") == "t1_test_it_a_b_c"
    assert len(database_name_for("y" * 100)) == 63


# The parent starts a server, says where, and waits to be killed.
_PARENT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from databases import PostgresServer
    server = PostgresServer(Path(sys.argv[1])).start()
    print(server.pid, server.port, flush=True)
    sys.stdin.read()
    """
)


def test_the_server_dies_with_its_parent(fresh: PostgresServer) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(fresh.data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert parent.stdout is not None
        pid, port = (int(word) for word in parent.stdout.readline().split())
        assert alive(pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    # Not our child: it is gone once it no longer exists at all.
    wait_until(lambda: not alive(pid), within=30, what=f"postgres (pid {pid}) exits")
    assert not port_in_use(port)


@as_root_only
def test_as_root_the_server_runs_as_an_unprivileged_account(fresh: PostgresServer) -> None:
    fresh.start()
    assert fresh.pid is not None
    assert process_uid(fresh.pid) != 0
    assert fresh.cluster_dir.stat().st_uid == process_uid(fresh.pid)


@as_root_only
def test_as_root_a_closed_data_directory_is_moved_then_removed(fresh: PostgresServer) -> None:
    fresh.start()
    # tmp_path is mode 0700: the cluster lives where the account can reach it.
    assert fresh.data_dir.is_symlink()
    cluster = fresh.cluster_dir
    assert cluster.parent == Path(tempfile.gettempdir()) / "lienthong-postgres"
    assert (fresh.data_dir / "PG_VERSION").exists()
    fresh.remove()
    assert not fresh.data_dir.exists() and not fresh.data_dir.is_symlink()
    assert not cluster.exists()


@as_root_only
def test_as_root_a_reachable_data_directory_is_used_in_place(
    postgres_binaries: PostgresBinaries, open_dir: Path
) -> None:
    server = PostgresServer(open_dir / "pg", binaries=postgres_binaries)
    with server:
        assert not server.data_dir.is_symlink()
        assert server.cluster_dir == (open_dir / "pg").resolve()
        assert server.data_dir.stat().st_uid != 0


@as_root_only
def test_as_root_a_closed_directory_with_files_is_an_error(
    postgres_binaries: PostgresBinaries, tmp_path: Path
) -> None:
    data = tmp_path / "pg"
    data.mkdir()
    (data / "notes.txt").write_text("mine")
    with pytest.raises(PostgresError) as caught:
        PostgresServer(data, binaries=postgres_binaries).start()
    assert f"{data} is not empty" in str(caught.value)
    assert "is closed to" in str(caught.value)


@as_root_only
def test_as_root_a_moved_cluster_left_behind_is_swept_once_not_running(
    fresh: PostgresServer,
) -> None:
    """A run killed before remove(): its cluster goes once its link does and its server stops."""
    fresh.start()
    fresh.stop()
    cluster = fresh.cluster_dir
    origin = cluster.with_name(cluster.name + ".origin")
    assert origin.read_text() == str(fresh.data_dir)
    assert cluster not in sweep_orphans(cluster.parent)
    assert cluster.exists(), "a stopped cluster whose link is there was deleted"
    fresh.start()
    fresh.data_dir.unlink()  # What pytest does to an old run's directory.
    assert cluster not in sweep_orphans(cluster.parent)
    assert cluster.exists(), "a running server's cluster was deleted"
    fresh.stop()
    assert cluster in sweep_orphans(cluster.parent)
    assert not cluster.exists() and not origin.exists()
