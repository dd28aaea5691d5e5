"""Each process's call observers (common.rpc.CallObserver), chosen in one
place from its environment: the registries' (common.server.run_registry)
and the gateway's (gateway/app.py). One `if enabled: append` per observer."""

from __future__ import annotations

import os
from collections.abc import Mapping

from common import metrics
from common.message_log import MessageLog
from common.rpc import CallObserver


def observers_for(process_name: str, env: Mapping[str, str] | None = None) -> list[CallObserver]:
    """The observers `process_name` ("population", "gateway"...) runs with."""
    env = os.environ if env is None else env
    observers: list[CallObserver] = []
    # Prometheus metrics, served on LIENTHONG_METRICS_PORT (common/metrics.py).
    call_metrics = metrics.from_env(process_name, env)
    if call_metrics is not None:
        observers.append(call_metrics)
    # The message log (evidence), when LIENTHONG_MESSAGE_LOG_DIR is set.
    message_log = MessageLog.from_env(process_name)
    if message_log is not None:
        observers.append(message_log)
    return observers
