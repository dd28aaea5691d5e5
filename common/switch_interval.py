"""How often a busy thread hands the GIL over, in our server processes.

Every store call now runs on a worker thread beside the event loop (the
saga store's SQLite thread, the registries' units of work), so each call
crosses the GIL twice. CPython makes a thread that wants the GIL wait up to
the switch interval (5 ms by default) for the one holding it to let go; a
dossier's ~10 store calls then queue behind it. Measured with a steady
100 dossiers/s replay on Apache Kafka (`lienthong replay steady.yaml
--insecure`, 6,207 dossiers): end-to-end p50 358 ms and a step 43 ms with
the default, 259 ms and 30 ms with 0.5 ms, for the same CPU (118 s both).
"""

from __future__ import annotations

import sys

SWITCH_INTERVAL_SECONDS = 0.0005


def hand_over_often() -> None:
    """Let a thread waiting for the GIL have it within 0.5 ms."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
