"""The stack supervisor: a Kafka broker, the three registries and the gateway as processes.

Used by `lienthong up`, `lienthong demo` and the end-to-end tests. Every
component is a separate `python -m ...` process with its settings in
environment variables (the same ones a deployment would set), its database in
the data directory and its output in DATA_DIR/<name>.log. Start-up waits on
each component's standard gRPC health check with a deadline; `stop()` always
runs (context manager, Ctrl-C, exceptions) and leaves no process behind.

    with Stack(broker="embedded") as stack:
        stack.address("gateway")        # "127.0.0.1:41235"
        stack.kill("gateway")           # SIGKILL, as a crash would
        stack.start_component("gateway")

`Stack(broker=None)` runs the registries alone (no Kafka, no gateway).

Scale-out (issue 13): `gateways=N` runs N gateway processes (gateway,
gateway-2...) in the same consumer groups over one saga store; `replicas=M`
runs M processes of each registry (population, population-2...: each its
own port, metrics port and log, one TLS identity) over one database, which
callers reach through one round-robin channel over all their addresses
(`agency_addresses`, common/channels.py). `store` says where the records
are (cli/store.py: SQLite files, or PostgreSQL, ours or a given server's;
M > 1 needs PostgreSQL). `separate_hosts=True` gives every process a
directory of its own as if each ran on its own host (its LIENTHONG_DATA_DIR,
working directory, log, message log and a copy of its TLS identity): they
then share only Kafka and PostgreSQL.

Trust (issue 12): by default the stack creates a local CA and every party's
identity in DATA_DIR/pki (or `pki_dir`, e.g. one CA shared by two stacks), and
each child gets its own in LIENTHONG_TLS_*: every port is mutual TLS and every
server enforces the access policy. `stack.tls()` is the CLI's identity for
the caller's own channels. `insecure=True` runs everything in plain text
(LIENTHONG_INSECURE=1 for every child), the developer's explicit opt-out.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import grpc

from brokers import BrokerKind, RunningBroker, start_broker
from cli.probe import NotServing, wait_serving
from cli.store import GATEWAY_KIND, StackStore, StoreError
from common import channels, injected_latency, message_log, metrics, pki, processes
from common.agencies import AGENCIES, AGENCY_NAMES, agency
from common.channels import INSECURE, TLS_CA, TLS_CERT, TLS_KEY, TlsSettings
from common.config import DEFAULT_METRICS_PORTS, DEFAULT_PORTS

# Our registry of each agency (common/agencies.py).
REGISTRIES = AGENCY_NAMES
GATEWAY = "gateway"
_MODULES = {a.name: a.module for a in AGENCIES} | {GATEWAY: "gateway"}
# How long an agency plugged in from elsewhere may take to answer its health
# check at start: it is already running, so not a process start's minute.
EXTERNAL_TIMEOUT_SECONDS = 15.0

# DATA_DIR/messages: one <process>.jsonl per server (common/message_log.py).
MESSAGE_LOG_DIR = "messages"
START_TIMEOUT_SECONDS = 60.0
# Whose identity the stack's own calls (probes) and the CLI's use.
CLI_IDENTITY = "lienthong-cli"
# One CA for more than one stack (e.g. an agency run by another stack).
PKI_ENV = "LIENTHONG_PKI_DIR"
STOP_GRACE_SECONDS = 10.0


class StackError(RuntimeError):
    """The stack could not start or a component failed; the message is for a person."""


@dataclass
class Component:
    """One child process: what to run, where it listens (gRPC, and its
    Prometheus metrics over HTTP), where it logs."""

    name: str
    module: str
    port: int
    env: dict[str, str]
    log_file: Path
    metrics_port: int
    host: str = processes.LOOPBACK
    # The agency a registry replica serves (None: a gateway).
    agency: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def metrics_address(self) -> str:
        """host:port of its metrics; http://host:port/metrics is what Prometheus scrapes."""
        return f"{self.host}:{self.metrics_port}"

    @property
    def is_gateway(self) -> bool:
        return self.module == _MODULES[GATEWAY]

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def module_available(module: str) -> bool:
    """Whether `python -m module` would find something to run."""
    try:
        return importlib.util.find_spec(f"{module}.__main__") is not None
    except ModuleNotFoundError:
        return False


class Stack:
    """Starts, watches and stops the processes of one lienthong deployment."""

    def __init__(
        self,
        *,
        broker: str | None = "embedded",
        data_dir: Path | None = None,
        fixed_ports: bool = False,
        registries: Sequence[str] = REGISTRIES,
        external: Mapping[str, str] | None = None,
        gateway: bool = True,
        verbose_children: bool = True,
        topic_prefix: str = "lienthong",
        env: Mapping[str, str] | None = None,
        gateway_env: Mapping[str, str] | None = None,
        start_timeout: float = START_TIMEOUT_SECONDS,
        stop_grace: float = STOP_GRACE_SECONDS,
        insecure: bool = False,
        pki_dir: Path | None = None,
        store: str = "sqlite",
        gateways: int = 1,
        replicas: int = 1,
        separate_hosts: bool = False,
    ) -> None:
        """
        broker: a brokers.BrokerKind value, or None for registries only (no gateway).
        data_dir: databases, logs, broker files; None makes a fresh temporary
            directory that stop() removes unless `keep_data_dir` is set.
        fixed_ports: listen on common.config.DEFAULT_PORTS (stable grpcurl
            lines) instead of free ports chosen now (parallel test runs).
        external: agency name → host:port of an implementation that runs
            elsewhere (`--agency population=HOST:PORT`): the stack starts no
            registry of its own for it, checks at start that it answers its
            gRPC health check, and points the gateway at it.
        env / gateway_env: extra variables for every child / for gateways only
            (e.g. a shorter LIENTHONG_CALL_DEADLINE_SECONDS in a test); they
            override the stack's own settings.
        insecure: plain text everywhere, no access policy (see the module's doc).
        pki_dir: where the CA and identities are (made if missing; default
            $LIENTHONG_PKI_DIR, else DATA_DIR/pki).
        store: sqlite, postgres (a server of the stack's own) or a
            postgresql:// URL (cli/store.py).
        gateways / replicas: gateway processes, and processes per registry.
        separate_hosts: a directory of its own per process (see the module's doc).
        """
        unknown = set(registries) - set(REGISTRIES)
        if unknown:
            raise ValueError(f"unknown registries: {sorted(unknown)}")
        if gateways < 1 or replicas < 1:
            raise ValueError("gateways and replicas must be at least 1")
        self.external = {name: address for name, address in (external or {}).items()}
        for name in self.external:
            agency(name)  # an unknown name raises, naming the agencies
        self.broker_kind = broker
        self.with_gateway = gateway and broker is not None
        self.fixed_ports = fixed_ports
        self.verbose_children = verbose_children
        self.topic_prefix = topic_prefix
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self._extra_env = dict(env or {})
        self._gateway_env = dict(gateway_env or {})
        self._owns_data_dir = data_dir is None
        self.data_dir = (
            Path(tempfile.mkdtemp(prefix="lienthong-")) if data_dir is None else data_dir.resolve()
        )
        self.insecure = insecure
        chosen_pki = pki_dir or (Path(os.environ[PKI_ENV]) if os.environ.get(PKI_ENV) else None)
        self.pki_dir = (chosen_pki or self.data_dir / "pki").resolve()
        # A temporary directory is removed at stop(); set this to keep its logs.
        self.keep_data_dir = False
        self.broker: RunningBroker | None = None
        self._registry_names = tuple(r for r in registries if r not in self.external)
        self.components: dict[str, Component] = {}
        # Ports handed to children, so that two never get the same one.
        self._ports_given: set[int] = set()
        self._started = False
        self.gateway_count = gateways
        self.replicas = replicas
        self.separate_hosts = separate_hosts
        try:
            self.store = StackStore(store, data_dir=self.data_dir, prefix=topic_prefix)
        except StoreError as exc:
            raise StackError(str(exc)) from None
        if not self.store.shared and (replicas > 1 or separate_hosts):
            what = f"{replicas} replicas of a registry" if replicas > 1 else "separate hosts"
            raise StackError(
                f"{what} need a store they can share: --store postgres (or a "
                "postgresql:// URL); SQLite is one file on one host"
            )

    # --- addresses -------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str | None:
        return self.broker.bootstrap_servers if self.broker is not None else None

    @property
    def addresses(self) -> dict[str, str]:
        """name → host:port of every component, e.g. {"population": "127.0.0.1:50051"}."""
        return {name: c.address for name, c in self.components.items()}

    @property
    def metrics_addresses(self) -> dict[str, str]:
        """name → host:port of each component's Prometheus metrics (`/metrics`)."""
        return {name: c.metrics_address for name, c in self.components.items()}

    def address(self, name: str) -> str:
        """A component's own host:port (`population-2`: that replica), or an
        agency plugged in from elsewhere."""
        if name in self.external:
            return self.external[name]
        return self._component(name).address

    def replica_names(self, agency_name: str) -> list[str]:
        """The components that serve an agency: population, population-2..."""
        return [n for n, c in self.components.items() if c.agency == agency_name]

    def agency_address(self, name: str) -> str:
        """How callers reach an agency: its one address, or all its replicas'
        comma-separated (one round-robin channel over them: common/channels.py)."""
        if name in self.external:
            return self.external[name]
        replicas = self.replica_names(name)
        if not replicas:
            raise StackError(f"no agency named {name!r} in this stack")
        return ",".join(self.components[r].address for r in replicas)

    @property
    def agency_addresses(self) -> dict[str, str]:
        """agency name → address of each agency this stack uses (ours or
        plugged in), in the table's order; several replicas comma-separated."""
        return {
            name: self.agency_address(name)
            for name in AGENCY_NAMES
            if name in self.external or self.replica_names(name)
        }

    @property
    def gateway_names(self) -> list[str]:
        return [n for n, c in self.components.items() if c.is_gateway]

    def home(self, name: str) -> Path:
        """The component's own directory: the data directory, or with
        separate hosts DATA_DIR/hosts/<name>."""
        return self.data_dir / "hosts" / name if self.separate_hosts else self.data_dir

    def database(self, kind: str) -> str:
        """LIENTHONG_<KIND>_DB of a kind of process (gateway, population...):
        a URL under PostgreSQL, the first process's SQLite file otherwise;
        what the caller's `env` set instead, if it did."""
        given = self._extra_env.get(f"LIENTHONG_{kind.upper()}_DB")
        return given or self.store.location(kind, self.data_dir / f"{kind}.sqlite3")

    @property
    def gateway_address(self) -> str:
        return self.address(GATEWAY)

    @property
    def message_log_dir(self) -> Path:
        """Where every component appends its message log (`lienthong audit`)."""
        return self.data_dir / MESSAGE_LOG_DIR

    def tls(self, identity: str = CLI_IDENTITY) -> TlsSettings | None:
        """An identity's TLS settings in this stack's PKI (None: insecure)."""
        if self.insecure:
            return None
        return TlsSettings.for_identity(self.pki_dir, identity)

    def channel(self, name: str, identity: str = CLI_IDENTITY) -> grpc.aio.Channel:
        """An asyncio channel to a component under `identity` (tests use
        `conformance`, the test identity granted every method)."""
        return channels.channel(self.address(name), tls=self.tls(identity))

    def sync_channel(self, name: str, identity: str = CLI_IDENTITY) -> grpc.Channel:
        return channels.sync_channel(self.address(name), tls=self.tls(identity))

    def log_file(self, name: str) -> Path:
        return self._component(name).log_file

    def component_names(self) -> list[str]:
        return list(self.components)

    def is_running(self, name: str) -> bool:
        return self._component(name).running()

    def pid(self, name: str) -> int | None:
        """The component's process id while it runs."""
        process = self._component(name).process
        return process.pid if process is not None and process.poll() is None else None

    # --- whole stack -----------------------------------------------------------------

    def start(self) -> Stack:
        """Start everything and wait until each component serves; on any failure
        (Ctrl-C included) stop what was started and re-raise."""
        if self._started:
            raise StackError("this stack was already started")
        self._started = True
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            # First started, last stopped: every other process keeps its records there.
            gateway_kind = (GATEWAY_KIND,) if self.with_gateway else ()
            try:
                self.store.start((*gateway_kind, *self._registry_names))
            except StoreError as exc:
                raise StackError(str(exc)) from None
            if not self.insecure:
                # Kept if present: a restarted stack keeps its identities.
                pki.issue_all(self.pki_dir)
            # First: an agency plugged in that does not answer fails the start
            # before anything of ours was started for nothing.
            for name, address in self.external.items():
                self._check_external(name, address)
            if self.with_gateway and not module_available(_MODULES[GATEWAY]):
                raise StackError("the gateway (python -m gateway) is not available")
            if self.with_gateway:
                self._start_broker()
            for name in self._registry_names:
                for replica in range(1, self.replicas + 1):
                    component = self._registry_component(name, replica)
                    self.components[component.name] = component
            registries = list(self.components.values())
            # The registries start side by side; the gateway needs them serving.
            for component in registries:
                self._spawn(component)
            for component in registries:
                self._wait_serving(component)
            if self.with_gateway:
                self.components[GATEWAY] = self._gateway_component(
                    GATEWAY, database=self.database(GATEWAY_KIND)
                )
                self.start_component(GATEWAY)
                # One after the other: each joins the consumer groups in turn.
                for _ in range(1, self.gateway_count):
                    self.add_gateway(database=self.database(GATEWAY_KIND))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the gateways, then the registries they call, then the broker.

        SIGTERM, up to `stop_grace` seconds for a clean exit, then SIGKILL.
        Safe to call more than once and from a failed start.
        """
        try:
            gateways = [c.process for c in self.components.values() if c.is_gateway and c.process]
            processes.terminate(gateways, grace_seconds=self.stop_grace)
            others = [c.process for c in self.components.values() if not c.is_gateway and c.process]
            processes.terminate(others, grace_seconds=self.stop_grace)
        finally:
            for component in self.components.values():
                component.process = None
            try:
                if self.broker is not None:
                    self.broker.stop()
            finally:
                try:
                    self.store.stop(remove=self._owns_data_dir and not self.keep_data_dir)
                finally:
                    if self._owns_data_dir and not self.keep_data_dir:
                        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Stack:
        if not self._started:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- single components (for failure-injection tests) ----------------------------

    def kill(self, name: str) -> None:
        """SIGKILL one component, as a crash or an OOM kill would, and reap it."""
        component = self._component(name)
        if component.process is not None:
            processes.kill(component.process)
            component.process = None

    def stop_component(self, name: str) -> None:
        """Stop one component gracefully (SIGTERM, then SIGKILL past the grace)."""
        component = self._component(name)
        if component.process is not None:
            processes.terminate([component.process], grace_seconds=self.stop_grace)
            component.process = None

    def start_component(self, name: str, *, wait: bool = True) -> None:
        """(Re)start a component on its old port, database and settings; wait
        until it serves (`wait=False`: return once spawned, e.g. a gateway
        started while the broker is down; `wait_serving` waits later)."""
        component = self._component(name)
        if component.running():
            raise StackError(f"{name} is already running")
        self._spawn(component)
        if wait:
            self._wait_serving(component)

    def wait_serving(self, name: str) -> None:
        """Wait (up to the start timeout) until a running component serves."""
        self._wait_serving(self._component(name))

    # --- the broker (for outage tests) -----------------------------------------------

    def stop_broker(self) -> None:
        """Stop the broker, as an outage would; the gateways keep running.
        `start_broker_again()` brings it back on the same port (and, for
        apache, the same data: topics and committed offsets survive; the
        embedded broker keeps nothing)."""
        if self.broker is None:
            raise StackError("this stack has no broker")
        self.broker.stop()

    def start_broker_again(self) -> None:
        """Start the stopped broker again on its port; returns once it answers."""
        if self.broker is None or self.broker.is_alive():
            raise StackError("the broker is not stopped")
        kind = self.broker.kind
        if kind not in (BrokerKind.EMBEDDED, BrokerKind.APACHE):
            raise StackError(f"a {kind.value} broker is not this stack's to restart")
        port = int(self.broker.bootstrap_servers.rpartition(":")[2])
        try:
            self.broker = start_broker(kind, data_dir=self.data_dir / "broker", port=port)
        except Exception as exc:
            raise StackError(f"the {kind.value} Kafka broker did not start again: {exc}") from exc

    def kill_broker(self) -> None:
        """SIGKILL the broker, as a crash would; its data directory stays."""
        if self.broker is None:
            raise StackError("this stack runs no broker")
        if self.broker.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.broker.pid, signal.SIGKILL)
        # Reaps the process; the launcher removes no data it was given.
        self.broker.stop()

    # --- the database server (for chaos) -----------------------------------------

    def kill_database(self) -> None:
        """SIGKILL the stack's own PostgreSQL server, as a crash would; its
        data directory stays (WAL replay on the next start)."""
        if self.store.server is None:
            raise StackError("this stack runs no database server of its own (--store postgres)")
        self.store.server.kill()

    def start_database_again(self) -> None:
        """Start the killed server on its port and data; returns once it
        accepts connections (the processes' pools reconnect on their own)."""
        if self.store.server is None:
            raise StackError("this stack runs no database server of its own (--store postgres)")
        try:
            self.store.server.start()
        except Exception as exc:
            raise StackError(f"PostgreSQL did not start again: {exc}") from exc

    def restart(self, name: str) -> None:
        self.stop_component(name)
        self.start_component(name)

    def add_gateway(
        self,
        name: str | None = None,
        *,
        database: Path | str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> str:
        """Start one more gateway process against the same broker and registries.

        It gets its own port and, unless `database` is given, the saga store
        every gateway of the stack shares (the gateways share the dossiers and,
        under store coordination, the partition leases: see gateway/leases.py).
        Returns its name (gateway-2, gateway-3...), usable with
        kill/stop_component/address.
        """
        if self.broker is None:
            raise StackError("a gateway needs the broker: start the stack with one")
        if name is None:
            count = sum(1 for c in self.components.values() if c.is_gateway)
            name = f"{GATEWAY}-{count + 1}"
        if name in self.components:
            raise StackError(f"there is already a component named {name}")
        component = self._gateway_component(
            name, database=database or self.database(GATEWAY_KIND), fixed_port=False
        )
        component.env.update(env or {})
        self.components[name] = component
        self.start_component(name)
        return name

    # --- internals -------------------------------------------------------------------

    def inject_latency(self, name: str, milliseconds: float) -> None:
        """Make a running registry (every replica of it) answer `milliseconds`
        later (0: on time again)."""
        if name not in self._registry_names:
            raise ValueError(f"{name} is not a registry of this stack")
        for replica in self.replica_names(name):
            injected_latency.write_injected_latency(self._latency_file(replica, name), milliseconds)

    def _latency_file(self, component: str, agency_name: str) -> Path:
        # The replicas on one host share the agency's file; on separate hosts each has its own.
        stem = component if self.separate_hosts else agency_name
        return self.home(component) / f"{stem}.injected-latency"

    def _component(self, name: str) -> Component:
        try:
            return self.components[name]
        except KeyError:
            raise StackError(
                f"no component named {name!r} (there are: {', '.join(self.components)})"
            ) from None

    def _start_broker(self) -> None:
        assert self.broker_kind is not None
        try:
            kind = BrokerKind(self.broker_kind)
        except ValueError:
            choices = ", ".join(k.value for k in BrokerKind)
            raise StackError(f"unknown broker {self.broker_kind!r} (choose {choices})") from None
        try:
            # Only the brokers we run keep files; external and docker take no data dir.
            owned = kind in (BrokerKind.EMBEDDED, BrokerKind.APACHE)
            self.broker = start_broker(kind, data_dir=self.data_dir / "broker" if owned else None)
        except Exception as exc:  # the launcher's errors are meant for a person already
            raise StackError(f"the {kind.value} Kafka broker did not start: {exc}") from exc

    def _port(self, name: str, defaults: Mapping[str, int] = DEFAULT_PORTS) -> int:
        if not self.fixed_ports or name not in defaults:
            # Below the ephemeral range: a registry killed in a chaos replay
            # must be able to bind its port again (common.processes.listen_port).
            return self._free_port()
        port = defaults[name]
        if processes.port_in_use(port):
            raise StackError(
                f"port {port} ({name}) is already in use: is another stack running "
                "(see DATA_DIR/stack.json)? Stop it first."
            )
        self._ports_given.add(port)
        return port

    def _free_port(self) -> int:
        while (port := processes.listen_port()) in self._ports_given:
            pass
        self._ports_given.add(port)
        return port

    def _metrics_env(self, port: int) -> dict[str, str]:
        # On loopback, as the gRPC port: the stack is for this machine.
        return {metrics.PORT_VARIABLE: str(port), metrics.HOST_VARIABLE: processes.LOOPBACK}

    def _base_env(self, name: str) -> dict[str, str]:
        home = self.home(name)
        env = dict(os.environ)
        # Each child gets its own identity below, never the caller's.
        for variable in (TLS_CA, TLS_CERT, TLS_KEY, INSECURE):
            env.pop(variable, None)
        env.update(
            {
                # Children's output goes to a file: flush each line so a crash
                # leaves its last words in the log.
                "PYTHONUNBUFFERED": "1",
                "LIENTHONG_DATA_DIR": str(home),
                # Its name among several of its kind, in its metrics (population-2).
                metrics.PROCESS_VARIABLE: name,
                "LIENTHONG_VERBOSE": "1" if self.verbose_children else "0",
                # Every server's message log (evidence: common/message_log.py).
                message_log.ENV_DIR: str(home / MESSAGE_LOG_DIR),
            }
        )
        return env

    def _trust_env(self, identity: str, home: Path) -> dict[str, str]:
        tls = self.tls(identity)
        if tls is None:
            return {INSECURE: "1"}
        if not self.separate_hosts:
            return tls.as_env()
        # As on a host of its own: a copy of the CA certificate and of its identity.
        own = home / "pki"
        own.mkdir(parents=True, exist_ok=True)
        copies = []
        for source in (tls.ca, tls.cert, tls.key):
            copy = own / source.name
            shutil.copy2(source, copy)
            copies.append(copy)
        return TlsSettings(*copies).as_env()

    def _registry_component(self, name: str, replica: int = 1) -> Component:
        """Replica 1 is named after the agency (its default port with fixed
        ports); the others population-2, population-3... on free ports."""
        component_name = name if replica == 1 else f"{name}-{replica}"
        home = self.home(component_name)
        home.mkdir(parents=True, exist_ok=True)
        port = self._port(name) if replica == 1 else self._free_port()
        metrics_port = (
            self._port(name, DEFAULT_METRICS_PORTS) if replica == 1 else self._free_port()
        )
        prefix = f"LIENTHONG_{name.upper()}_"
        env = (
            self._base_env(component_name)
            | self._metrics_env(metrics_port)
            | {
                prefix + "HOST": processes.LOOPBACK,
                prefix + "PORT": str(port),
                prefix + "DB": self.store.location(name, self.home(name) / f"{name}.sqlite3"),
                injected_latency.ENV: str(self._latency_file(component_name, name)),
            }
            | self._trust_env(name, home)
        )
        # Last, so a test can override anything (e.g. point a database somewhere unwritable).
        env.update(self._extra_env)
        return Component(
            component_name,
            _MODULES[name],
            port,
            env,
            home / f"{component_name}.log",
            metrics_port,
            agency=name,
        )

    def _gateway_component(
        self, name: str, *, database: Path | str | None = None, fixed_port: bool = True
    ) -> Component:
        assert self.broker is not None
        home = self.home(name)
        home.mkdir(parents=True, exist_ok=True)
        port = self._port(name) if fixed_port else self._free_port()
        metrics_port = self._port(name, DEFAULT_METRICS_PORTS) if fixed_port else self._free_port()
        if database is None:
            database = (
                self.database(GATEWAY_KIND) if self.store.shared else home / f"{name}.sqlite3"
            )
        env = (
            self._base_env(name)
            | self._metrics_env(metrics_port)
            | {
                "LIENTHONG_GATEWAY_HOST": processes.LOOPBACK,
                "LIENTHONG_GATEWAY_PORT": str(port),
                "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
                "LIENTHONG_GATEWAY_DB": str(database),
                "LIENTHONG_TOPIC_PREFIX": self.topic_prefix,
                # Known for the brokers we start: the gateway need not try it at
                # each start (the try costs ~8 s on the embedded broker).
                "LIENTHONG_STATIC_MEMBERSHIP": {True: "yes", False: "no", None: "probe"}[
                    self.broker.static_membership
                ],
            }
            | self._trust_env(GATEWAY, home)
        )
        # Where the broker does not give a restarted member its place back
        # (Tansu: ~3 s a join, everyone rebalanced), the saga store shares the
        # partitions out (gateway/leases.py), unless the caller chose.
        env.setdefault(
            "LIENTHONG_GROUP_COORDINATION",
            "store" if self.broker.static_membership is False else "kafka",
        )
        if self.broker.fetch_max_wait_ms is not None:
            # The broker's own fetch window (Tansu answers late within it), unless
            # the caller set one.
            env.setdefault("LIENTHONG_KAFKA_FETCH_MAX_WAIT_MS", str(self.broker.fetch_max_wait_ms))
        for agency_name, address in self.agency_addresses.items():
            env[agency(agency_name).address_variable] = address
        env.update(self._extra_env)
        env.update(self._gateway_env)
        return Component(name, _MODULES[GATEWAY], port, env, home / f"{name}.log", metrics_port)

    def _spawn(self, component: Component) -> None:
        if not module_available(component.module):
            raise StackError(f"{component.name}: python -m {component.module} is not available")
        with component.log_file.open("a", encoding="utf-8") as log:
            # A marker between runs: restarts append to the same log.
            log.write(f"--- lienthong stack: starting {component.name} at {time.ctime()} ---\n")
        component.process = processes.spawn(
            [sys.executable, "-m", component.module],
            log_file=component.log_file,
            env=component.env,
            cwd=self.home(component.name),
        )

    def _check_external(self, name: str, address: str) -> None:
        try:
            wait_serving(
                address,
                timeout=min(self.start_timeout, EXTERNAL_TIMEOUT_SECONDS),
                tls=self.tls(),
            )
        except NotServing as exc:
            raise StackError(
                f"{name} at {address} (plugged in with --agency) does not answer its "
                f"gRPC health check: {exc}"
            ) from None

    def _wait_serving(self, component: Component) -> None:
        proc = component.process
        assert proc is not None

        def pause(seconds: float) -> None:
            # Returns at once if the child dies, so a crash is reported without delay.
            try:
                proc.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                return

        try:
            wait_serving(
                component.address,
                timeout=self.start_timeout,
                tls=self.tls(),
                still_starting=lambda: proc.poll() is None,
                pause=pause,
            )
        except NotServing as exc:
            if proc.poll() is not None:
                what = f"{component.name} {processes.describe_exit(proc.returncode)}"
            else:
                what = f"{component.name} did not become ready: {exc}"
            last_lines = processes.tail(component.log_file)
            raise StackError(
                f"{what}; its log is {component.log_file}"
                + (f"\n--- last lines ---\n{last_lines}" if last_lines else "")
            ) from None
