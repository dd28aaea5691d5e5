"""A PostgreSQL server of our own: initdb on first use, then `postgres` on
127.0.0.1 at a free port, until stop().

    with PostgresServer(Path("data/postgres")) as server:
        url = server.create_database("gateway")   # postgresql://lienthong@127.0.0.1:PORT/gateway

The data directory holds the cluster (initdb's files), `server.log` (the
server's own output) and `initdb.log`; the Unix socket is there too when its
path is short enough. As root the cluster may live elsewhere (see
databases/unprivileged.py). Every setting is given on the command line at each
start, so a data directory made by an older version of this file gets today's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import psycopg

from common import processes
from common.processes import LOOPBACK, describe_exit, listen_port, port_in_use, tail
from databases.admin import (
    create_database,
    database_name_for,
    drop_database,
    wait_until_accepting,
)
from databases.binaries import PostgresBinaries, PostgresError, find_binaries
from databases.unprivileged import (
    Account,
    cluster_directory,
    forget_moved,
    give,
    server_account,
)

__all__ = [
    "SERVER_SETTINGS",
    "SUPERUSER",
    "PostgresBinaries",
    "PostgresError",
    "PostgresServer",
    "database_name_for",
    "find_binaries",
]

SUPERUSER = "lienthong"
START_TIMEOUT_SECONDS = 60.0
# A fast shutdown of an idle server takes well under a second; past this, SIGKILL.
STOP_GRACE_SECONDS = 30.0
_INITDB_TIMEOUT_SECONDS = 120.0
# sockaddr_un.sun_path is 108 bytes on Linux, with its terminating NUL.
_MAX_SOCKET_PATH = 107

SERVER_SETTINGS: dict[str, str] = {
    # Commits still reach the operating system before COMMIT returns, so they
    # survive any process being killed, the server included; only a power loss
    # or a kernel crash could lose or corrupt them. The same stance as our
    # SQLite stores' synchronous=NORMAL. Measured here, one client inserting
    # one row per commit: ~3,500 commits/s with fsync on, ~10,000-15,000 off.
    # (synchronous_commit stays on: turning it off would lose the last
    # commits when the server itself is killed.)
    "fsync": "off",
    # Torn pages happen only on a power loss, which fsync=off gives up on anyway.
    "full_page_writes": "off",
    # Room for 3 gateways and 6 registry replicas, each with a pool, plus tests
    # and tools; each connection slot costs a few hundred kilobytes.
    "max_connections": "300",
    # Modest: the test suite runs one server per pytest process, on a machine
    # shared with Kafka and the services.
    "shared_buffers": "64MB",
    # Our queries are short and indexed; compiling them would cost more than it saves.
    "jit": "off",
    # One format for the timestamps in server.log, whatever the machine's zone.
    "log_timezone": "UTC",
}

# initdb's pg_hba.conf with --auth=trust also trusts ::1 and replication;
# ours says exactly what is allowed: this machine's loopback and the socket in
# the data directory (mode 0700, its owner only).
PG_HBA = """\
# Written by databases/postgres.py at initdb: no passwords, for this machine only.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  trust
"""


class PostgresServer:
    """One PostgreSQL server over one data directory; start() and stop() may repeat."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        binaries: PostgresBinaries | None = None,
        start_timeout: float = START_TIMEOUT_SECONDS,
    ) -> None:
        self.data_dir = Path(data_dir)
        self._requested_port = port
        self._port: int | None = port
        self._binaries = binaries
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._cluster: Path | None = None

    # ---- what it is -----------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise PostgresError("the server has no port until it is started")
        return self._port

    @property
    def cluster_dir(self) -> Path:
        """Where the cluster's files are (data_dir, or where a link there leads)."""
        return self._cluster or self.data_dir.resolve()

    @property
    def log_file(self) -> Path:
        return self.cluster_dir / "server.log"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs (also its process group's id)."""
        return self._proc.pid if self.is_running() and self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def url(self, dbname: str) -> str:
        return f"postgresql://{SUPERUSER}@{LOOPBACK}:{self.port}/{quote(dbname, safe='')}"

    def __repr__(self) -> str:
        state = f"port {self._port}" if self.is_running() else "stopped"
        return f"PostgresServer({str(self.data_dir)!r}, {state})"

    # ---- start and stop -------------------------------------------------------

    def start(self) -> PostgresServer:
        """initdb if the data directory is empty, then run the server until it
        accepts a connection. Raises PostgresError (with the log's tail)."""
        if self.is_running():
            return self
        binaries = self._binaries or find_binaries()
        account = server_account()
        if self._requested_port is not None and port_in_use(self._requested_port):
            raise PostgresError(
                f"port {self._requested_port} on {LOOPBACK} is already in use; "
                "stop whatever listens there or choose another port"
            )
        cluster = cluster_directory(self.data_dir, account)
        self._cluster = cluster
        if not (cluster / "PG_VERSION").exists():
            self._initdb(binaries, cluster, account)
        # A port of ours, kept across restarts of this object, so URLs handed
        # out stay valid; below the ephemeral range (see listen_port) so a
        # client reconnecting while the server is down cannot take it.
        if self._port is None or (self._requested_port is None and port_in_use(self._port)):
            self._port = listen_port()
        self._proc = processes.spawn(
            self._argv(binaries, cluster),
            log_file=cluster / "server.log",
            env={**os.environ, "LC_ALL": "C"},  # English messages: we quote the log.
            cwd=cluster,
            user=None if account is None else account.name,
            death_signal=signal.SIGINT,
        )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _initdb(self, binaries: PostgresBinaries, cluster: Path, account: Account | None) -> None:
        if cluster.exists() and any(cluster.iterdir()):
            raise PostgresError(
                f"{cluster} is neither empty nor a PostgreSQL data directory (no PG_VERSION)"
            )
        argv = [
            str(binaries.initdb),
            "--pgdata",
            str(cluster),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            # Byte order for text: the same sort on every machine, and no
            # dependency on which locales the OS has.
            "--locale",
            "C",
            # No fsync of the new files: the server runs with fsync=off anyway.
            "--no-sync",
        ]
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                env={**os.environ, "LC_ALL": "C"},
                user=None if account is None else account.uid,
                group=None if account is None else account.gid,
                extra_groups=None if account is None else [],
                timeout=_INITDB_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PostgresError(
                f"initdb took over {_INITDB_TIMEOUT_SECONDS:g} s in {cluster}"
            ) from exc
        output = (result.stdout + result.stderr).decode("utf-8", errors="replace")
        if result.returncode != 0:
            last = "\n".join(output.splitlines()[-25:])
            raise PostgresError(
                f"initdb failed in {cluster} ({describe_exit(result.returncode)})\n"
                f"--- its output ---\n{last}"
            )
        (cluster / "initdb.log").write_text(output, encoding="utf-8")
        hba = cluster / "pg_hba.conf"
        hba.write_text(PG_HBA, encoding="utf-8")
        if account is not None:
            give(hba, account)

    def _argv(self, binaries: PostgresBinaries, cluster: Path) -> list[str]:
        socket = cluster / f".s.PGSQL.{self.port}"
        # A deep data directory (a pytest tmp_path) can make the socket's path
        # too long for the kernel; clients use TCP, so then there is none.
        socket_dir = str(cluster) if len(str(socket)) <= _MAX_SOCKET_PATH else ""
        settings = {
            "listen_addresses": LOOPBACK,
            "port": str(self.port),
            "unix_socket_directories": socket_dir,
            **SERVER_SETTINGS,
        }
        argv = [str(binaries.postgres), "-D", str(cluster)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def _wait_until_ready(self) -> None:
        proc = self._proc
        assert proc is not None

        def exited() -> str | None:
            return None if proc.poll() is None else describe_exit(proc.returncode)

        wait_until_accepting(
            self.url("postgres"),
            timeout=self._start_timeout,
            what=f"postgres on {LOOPBACK}:{self.port}",
            exited=exited,
            details=self._log_tail,
        )

    def _log_tail(self) -> str:
        text = tail(self.log_file)
        return f"\n--- last lines of {self.log_file} ---\n{text}" if text.strip() else ""

    def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """A fast shutdown (SIGINT: sessions are ended, a checkpoint written),
        then SIGKILL of the server's whole process group after the grace.

        Not SIGTERM: that is PostgreSQL's "smart" shutdown, which waits for
        every client to disconnect, and a pool elsewhere may never do so."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=grace_seconds)
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends at once, as a crash would."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            # Its own process group (processes.spawn): the backends too, so none
            # lingers holding the shared memory a restart needs.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        processes.kill(proc)
        self._proc = None

    def remove(self) -> None:
        """Stop, then delete the cluster's files and the data directory."""
        self.stop()
        cluster = self.cluster_dir
        if self.data_dir.is_symlink():
            self.data_dir.unlink()
            forget_moved(cluster)
        shutil.rmtree(cluster, ignore_errors=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- databases ------------------------------------------------------------

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """A connection as the superuser, in autocommit mode (for administration)."""
        return psycopg.connect(self.url(dbname), autocommit=True)

    def create_database(self, name: str) -> str:
        """The database's URL, creating it first unless it exists (peers may race)."""
        create_database(self.url("postgres"), name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop it if it exists, ending its sessions first (no-op otherwise)."""
        drop_database(self.url("postgres"), name)
