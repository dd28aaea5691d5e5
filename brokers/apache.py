"""The ``apache`` broker: Apache Kafka 4.x, KRaft single node (broker+controller), on Java 17+.

Layout of the data folder (a fresh temporary one per start unless given):
``server.properties``, ``kraft/`` (the log dir), ``server.log`` (log4j2) and
``kafka.out`` (the JVM's stdout/stderr). A given data folder that is already
formatted is reused as it is, so its topics survive a restart.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.resources
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from brokers._core import BrokerKind, BrokerStartError, RunningBroker
from brokers._process import (
    LOOPBACK,
    describe_logs,
    ensure_port_free,
    listen_port,
    spawn,
    stop_process,
)
from brokers._ready import wait_until_answers
from brokers.kafka_jars import ensure_kafka_jars, kafka_version

START_TIMEOUT_SECONDS = 90.0
# A single node shuts down cleanly in well under a second here; past this, SIGKILL.
STOP_GRACE_SECONDS = 30.0
_FORMAT_TIMEOUT_SECONDS = 60.0

# Settings for a one-node cluster, shared with the docker broker. Internal topics
# cannot have 3 replicas on one node; Kafka's 50 partitions for them would make
# the first group or transaction slow to set up for no gain here.
SINGLE_NODE_SETTINGS: dict[str, str] = {
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "6",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "6",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    # Kafka waits 3 s for more members before a new group's first assignment.
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "true",
    "num.partitions": "6",
    "default.replication.factor": "1",
}

# The machine has 2 cores and runs the services next to the broker.
_THREAD_SETTINGS: dict[str, str] = {
    "num.network.threads": "2",
    "num.io.threads": "4",
    "num.recovery.threads.per.data.dir": "1",
}

# After a SIGKILL the restarted broker cannot register (the controller answers
# DUPLICATE_BROKER_REGISTRATION) until the controller, started afresh in the
# same JVM, has timed out the dead incarnation's session. Kafka's 9 s default
# was most of a restart here. Broker and controller share the process, so
# heartbeats only cross loopback; 2 s still spans 8 of them, so a GC pause or a
# loaded machine does not fence the live broker.
_RESTART_SETTINGS: dict[str, str] = {
    "broker.heartbeat.interval.ms": "250",
    "broker.session.timeout.ms": "2000",
}

# TieredStopAtLevel=1: the C1 compiler only. Starting Kafka is mostly
# class loading and JIT work; C2 compiling in the background competes for the
# 2 cores and roughly doubled a restart here (9.8 s -> 5.8 s median). A dev
# broker's throughput does not need C2's peak code.
JVM_OPTIONS: tuple[str, ...] = (
    "-XX:TieredStopAtLevel=1",
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)


def server_properties(*, log_dir: Path, port: int, controller_port: int) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{LOOPBACK}:{controller_port}",
        "listeners": f"PLAINTEXT://{LOOPBACK}:{port},CONTROLLER://{LOOPBACK}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(log_dir),
        **SINGLE_NODE_SETTINGS,
        **_THREAD_SETTINGS,
        **_RESTART_SETTINGS,
    }
    lines = [f"# Written by brokers/apache.py for Kafka {kafka_version()}; rewritten each start."]
    lines += [f"{key}={value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def new_cluster_id() -> str:
    """A Kafka Uuid string: 16 random bytes, URL-safe base64, no padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        # Kafka's own Uuid.randomUuid() rejects ids starting with '-' (they read as options).
        if not text.startswith("-"):
            return text


def java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise BrokerStartError(
            "java is not on PATH (nor in JAVA_HOME): the apache broker needs Java 17 or newer. "
            "Install a JDK/JRE 17+, or use --broker embedded"
        )
    return found


def _jvm_argv(java: str, libs: Path, data_dir: Path) -> list[str]:
    log4j2 = importlib.resources.files("brokers").joinpath("kafka-log4j2.xml")
    extra = shlex.split(os.environ.get("LIENTHONG_KAFKA_JVM_OPTS", ""))
    return [
        java,
        *JVM_OPTIONS,
        *extra,
        f"-Dlog4j2.configurationFile={log4j2}",
        f"-Dkafka.logs.dir={data_dir}",
        "-cp",
        f"{libs}{os.sep}*",
    ]


_HINTS = {
    "UnsupportedClassVersionError": "this Java is too old: Kafka 4 needs Java 17 or newer",
    "Address already in use": "a port was taken by another process meanwhile; try again",
}


def _with_hint(message: str) -> str:
    """Put a one-line diagnosis of a known failure under the message's first line."""
    for needle, hint in _HINTS.items():
        if needle in message:
            first, newline, rest = message.partition("\n")
            return f"{first}\nhint: {hint}{newline}{rest}"
    return message


def _format_storage(java: str, libs: Path, data_dir: Path, properties: Path) -> None:
    if (data_dir / "kraft" / "meta.properties").exists():
        return  # Reusing a formatted data folder (topics survive).
    out = data_dir / "format.out"
    argv = [
        *_jvm_argv(java, libs, data_dir),
        "kafka.tools.StorageTool",
        "format",
        "--cluster-id",
        new_cluster_id(),
        "--config",
        str(properties),
    ]
    with out.open("wb") as sink:
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                timeout=_FORMAT_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerStartError(
                f"kafka.tools.StorageTool format took over {_FORMAT_TIMEOUT_SECONDS:g} s"
                + describe_logs([out])
            ) from exc
    if result.returncode != 0:
        raise BrokerStartError(
            _with_hint(
                f"kafka.tools.StorageTool format failed (exit code {result.returncode})"
                + describe_logs([out, data_dir / "server.log"])
            )
        )


def _controller_port_of(properties: Path) -> int | None:
    """The controller port an earlier start of this data directory used."""
    try:
        text = properties.read_text(encoding="utf-8")
    except OSError:
        return None
    found = re.search(r"^listeners=.*CONTROLLER://[^:,]+:(\d+)", text, re.MULTILINE)
    return int(found.group(1)) if found else None


def start(
    *, data_dir: Path | None = None, port: int | None = None, timeout: float | None = None
) -> RunningBroker:
    java = java_executable()
    libs = ensure_kafka_jars()
    if port is not None:
        ensure_port_free(port)
    owned = data_dir is None
    home = Path(tempfile.mkdtemp(prefix="lienthong-kafka-")) if data_dir is None else data_dir
    home.mkdir(parents=True, exist_ok=True)
    properties = home / "server.properties"
    # Ports below the ephemeral range (common.processes.listen_port), so a
    # client reconnecting while the broker is down cannot take one; and a
    # restart on the same data keeps its controller's port, which the KRaft
    # quorum was formed on.
    broker_port = port if port is not None else listen_port()
    controller_port = _controller_port_of(properties) or listen_port()
    while controller_port == broker_port:
        controller_port = listen_port()
    logs = [home / "kafka.out", home / "server.log"]
    bootstrap = f"{LOOPBACK}:{broker_port}"
    with contextlib.ExitStack() as undo_on_failure:
        if owned:
            undo_on_failure.callback(shutil.rmtree, home, ignore_errors=True)
        properties.write_text(
            server_properties(
                log_dir=home / "kraft", port=broker_port, controller_port=controller_port
            )
        )
        _format_storage(java, libs, home, properties)
        proc = spawn(
            [*_jvm_argv(java, libs, home), "kafka.Kafka", str(properties)],
            output=home / "kafka.out",
            cwd=home,
        )
        undo_on_failure.callback(stop_process, proc, grace_seconds=5)
        try:
            wait_until_answers(
                bootstrap,
                timeout=timeout or START_TIMEOUT_SECONDS,
                what=f"Apache Kafka {kafka_version()}",
                process=proc,
                logs=logs,
            )
        except BrokerStartError as exc:
            raise BrokerStartError(_with_hint(str(exc))) from None
        undo_on_failure.pop_all()  # Started: the broker's stop() owns the cleanup now.

    def stop() -> None:
        stop_process(proc, grace_seconds=STOP_GRACE_SECONDS)
        if owned:
            shutil.rmtree(home, ignore_errors=True)

    return RunningBroker(
        kind=BrokerKind.APACHE,
        bootstrap_servers=bootstrap,
        supports_idempotence=True,
        static_membership=True,
        data_dir=home,
        log_file=home / "server.log",
        _stop=stop,
        _is_alive=lambda: proc.poll() is None,
        pid=proc.pid,
    )
