"""What hears every call of a process's server, chosen from the environment.

Each process builds its observers (common.rpc.CallObserver) here and only
here: `common.server.run_registry` for the registries, gateway/app.py for the
gateway. One `if enabled: append(...)` per observer.
"""

from __future__ import annotations

from common.message_log import MessageLog
from common.rpc import CallObserver


def observers_for(process_name: str) -> list[CallObserver]:
    observers: list[CallObserver] = []
    # The message log (evidence), when LIENTHONG_MESSAGE_LOG_DIR is set.
    message_log = MessageLog.from_env(process_name)
    if message_log is not None:
        observers.append(message_log)
    return observers
