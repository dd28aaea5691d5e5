"""Prometheus metrics: every process's call counts and latencies, and the
HTTP endpoint a Prometheus server scrapes (`/metrics`).

`CallMetrics` is a call observer (common.rpc.CallObserver): every call a
server answered or refused counts once by service, method, caller and status
code, its duration goes in a histogram by method, and a refusal by the access
policy (PERMISSION_DENIED) counts by caller. The gateway adds its own
(gateway/metrics.py) to the same registry.

The endpoint is off unless `LIENTHONG_METRICS_PORT` is set; it listens on
127.0.0.1 unless `LIENTHONG_METRICS_HOST` says otherwise (a container: 0.0.0.0).
The metrics of a process live in its own registry (`process_registry()`),
not prometheus_client's global one, so a test builds a fresh registry and
reads exactly what it caused.

Label values are bounded: services and methods are those of the server's own
contracts (the interceptor tells only calls that found a handler); a caller
is the identity in a certificate our CA issued, cut to CALLER_LIMIT
characters, and past MAX_CALLERS distinct callers the rest count as "other".
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, Info, ProcessCollector
from prometheus_client.exposition import start_http_server

from common.quoting import cap
from common.rpc import CallRecord

log = structlog.get_logger("metrics")

PORT_VARIABLE = "LIENTHONG_METRICS_PORT"
HOST_VARIABLE = "LIENTHONG_METRICS_HOST"
# The process's own name when it is one of several of a kind (population-2,
# gateway-3: a registry's replicas, several gateways); else its kind's name.
PROCESS_VARIABLE = "LIENTHONG_PROCESS_NAME"
DEFAULT_HOST = "127.0.0.1"

# From a millisecond (a lookup by key) to the call deadline's order (10 s).
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# An identity name is short ("gateway", "hospital"); a longer one is cut.
CALLER_LIMIT = 64
# Distinct callers one process labels by name; beyond, "other" (a series per
# caller is kept for the life of the process).
MAX_CALLERS = 32
OTHER_CALLER = "other"
REFUSED_BY_POLICY = "PERMISSION_DENIED"


@dataclass(frozen=True)
class MetricsSettings:
    """Where a process serves its metrics; `port` None: not served."""

    host: str
    port: int | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MetricsSettings:
        # os.environ looked up at each call: the compose test records what is read.
        env = os.environ if env is None else env
        host = env.get(HOST_VARIABLE, "") or DEFAULT_HOST
        raw = env.get(PORT_VARIABLE, "").strip()
        if not raw:
            return cls(host, None)
        if not raw.isdigit() or not 0 <= int(raw) < 65536:
            raise SystemExit(f"{PORT_VARIABLE} must be a port number, got {raw[:100]!r}")
        return cls(host, int(raw))


class CallMetrics:
    """Counts and times every call a server's observers hear."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "lienthong_rpc_calls",
            "Calls a server answered or refused, by service, method, caller identity "
            "and gRPC status code.",
            ["service", "method", "caller", "code"],
            registry=registry,
        )
        self.duration = Histogram(
            "lienthong_rpc_duration_seconds",
            "How long a server took to answer or refuse a call, by service and method.",
            ["service", "method"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.refusals = Counter(
            "lienthong_access_refusals",
            "Calls refused by the access policy (PERMISSION_DENIED), by service, method "
            "and caller identity.",
            ["service", "method", "caller"],
            registry=registry,
        )
        self._callers: dict[str, str] = {}
        # Label lookups cost more than the increments: each series' child is
        # found once, then kept (keyed by the method's full name).
        self._counted: dict[tuple[str, str, str], Counter] = {}
        self._timed: dict[str, Histogram] = {}

    def caller_label(self, caller: str) -> str:
        label = self._callers.get(caller)
        if label is None:
            if len(self._callers) >= MAX_CALLERS:
                return OTHER_CALLER
            label = self._callers[caller] = cap(caller, CALLER_LIMIT)
        return label

    def observe(self, record: CallRecord) -> None:
        key = (record.method, record.caller, record.code)
        counted = self._counted.get(key)
        if counted is None:
            caller = self.caller_label(record.caller)
            counted = self.calls.labels(record.service, record.method_name, caller, record.code)
            if caller != OTHER_CALLER:
                self._counted[key] = counted
        counted.inc()
        timed = self._timed.get(record.method)
        if timed is None:
            timed = self._timed[record.method] = self.duration.labels(
                record.service, record.method_name
            )
        timed.observe(record.duration_ms / 1000)
        if record.code == REFUSED_BY_POLICY:
            caller = self.caller_label(record.caller)
            self.refusals.labels(record.service, record.method_name, caller).inc()


@functools.cache
def process_registry() -> CollectorRegistry:
    """This process's metrics: the ones its endpoint serves."""
    registry = CollectorRegistry()
    # Memory, CPU time, open files of the process (on Linux).
    ProcessCollector(registry=registry)
    return registry


def serve(registry: CollectorRegistry, host: str, port: int) -> WSGIServer:
    """Serve `registry` on http://host:port/metrics from a daemon thread
    (port 0: a free one; the server's `server_port` says which). SystemExit,
    naming the port, when it cannot listen."""
    try:
        server, _ = start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        raise SystemExit(
            f"cannot serve metrics on {host}:{port} ({error.strerror or error}); "
            f"is the port already in use? ({PORT_VARIABLE})"
        ) from None
    return server


class _Served:
    """The process's call metrics once its endpoint is started: one per process."""

    observer: CallMetrics | None = None


def from_env(process: str, env: Mapping[str, str] | None = None) -> CallMetrics | None:
    """The call metrics observer of this process, its endpoint started, when
    LIENTHONG_METRICS_PORT asks for it; None otherwise. Started once per
    process, however many times asked."""
    settings = MetricsSettings.from_env(env)
    if settings.port is None:
        return None
    if _Served.observer is None:
        registry = process_registry()
        about = Info("lienthong_process", "Which process serves these metrics.", registry=registry)
        named = (os.environ if env is None else env).get(PROCESS_VARIABLE, "").strip()
        about.info({"process": named[:64] or process})
        observer = CallMetrics(registry)
        server = serve(registry, settings.host, settings.port)
        log.info("serving metrics", address=f"http://{settings.host}:{server.server_port}/metrics")
        _Served.observer = observer
    return _Served.observer
