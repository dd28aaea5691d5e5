"""DATA_DIR/stack.json: where a running `lienthong up` listens, for the other commands.

Written once the stack serves, removed when it stops. A stale file (the
stack was SIGKILLed) is harmless: readers check that the gateway answers.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cli.probe import check
from common import pki
from common.agencies import AGENCY_NAMES, agency, default_address
from common.channels import TlsMisconfigured, TlsSettings
from common.config import DEFAULT_PORTS

STATE_FILE = "stack.json"
DEFAULT_DATA_DIR = Path("data")


@dataclass(frozen=True)
class StackState:
    gateway: str
    # agency name → host:port (ours, or one plugged in with --agency).
    agencies: dict[str, str]
    bootstrap_servers: str
    broker: str
    data_dir: str
    pid: int
    # name → process id of each component, for operators (and the tests).
    processes: dict[str, int] = field(default_factory=dict)
    # name → host:port of each component's Prometheus metrics (http://host:port/metrics).
    metrics: dict[str, str] = field(default_factory=dict)
    # Where the stack's CA and identities are (DATA_DIR/pki); "" when unknown.
    pki_dir: str = ""
    # Plain text, no access policy (`up --insecure`).
    insecure: bool = False
    # Where the records are: sqlite, postgres (ours) or a server's URL, password redacted.
    store: str = "sqlite"
    # name → host:port of every gateway process (`gateway` is the first).
    gateways: dict[str, str] = field(default_factory=dict)
    # The web console's address (http://127.0.0.1:8088); "" without one.
    console: str = ""

    def tls(self, identity: str = "lienthong-cli") -> TlsSettings | None:
        """The CLI's channels to this stack: `identity` from its PKI."""
        return client_tls(self, identity)

    @classmethod
    def defaults(cls) -> StackState:
        """Where a stack on the default ports would listen (the state file is lost)."""
        return cls(
            gateway=f"127.0.0.1:{DEFAULT_PORTS['gateway']}",
            agencies={name: default_address(name) for name in AGENCY_NAMES},
            bootstrap_servers="",
            broker="",
            data_dir="",
            pid=0,
        )


def default_data_dir() -> Path:
    return Path(os.environ.get("LIENTHONG_DATA_DIR") or DEFAULT_DATA_DIR)


def write_state(data_dir: Path, state: StackState) -> Path:
    path = data_dir / STATE_FILE
    temporary = path.with_suffix(".tmp")
    # Write then rename: a reader never sees half a file.
    temporary.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)
    return path


def read_state(data_dir: Path) -> StackState | None:
    try:
        raw = json.loads((data_dir / STATE_FILE).read_text(encoding="utf-8"))
        if "agencies" not in raw:
            # Written by a lienthong from before the agency table: one key each.
            raw["agencies"] = {n: raw.pop(n) for n in AGENCY_NAMES if n in raw}
        return StackState(**raw)
    except (OSError, ValueError, TypeError):
        return None


def remove_state(data_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (data_dir / STATE_FILE).unlink()


def client_tls(
    state: StackState | None, identity: str = "lienthong-cli", *, insecure: bool = False
) -> TlsSettings | None:
    """How the CLI calls a running stack: plain text if asked (`--insecure`)
    or if the stack is insecure; else `identity` from the stack's PKI (the
    one stack.json names, else DATA_DIR/pki), else this process's own
    LIENTHONG_TLS_* settings; else plain text."""
    if insecure or (state is not None and state.insecure):
        return None
    candidates = [Path(state.pki_dir)] if state is not None and state.pki_dir else []
    candidates.append(default_data_dir() / "pki")
    for directory in candidates:
        cert, key = pki.identity_paths(directory, identity)
        if cert.exists() and key.exists():
            return TlsSettings(directory / pki.CA_CERT, cert, key)
    try:
        return TlsSettings.from_env()
    except TlsMisconfigured:
        return None


def find_running_stack(
    data_dir: Path | None = None, *, timeout: float = 1.0, insecure: bool = False
) -> StackState | None:
    """The stack whose gateway answers: the one in stack.json, else one on the default ports."""
    recorded = read_state(data_dir or default_data_dir())
    for candidate in (recorded, StackState.defaults()):
        if candidate is None:
            continue
        tls = client_tls(candidate, insecure=insecure)
        if check(candidate.gateway, timeout=timeout, tls=tls):
            return candidate
    return None


def _address(
    explicit: str | None,
    variable: str,
    data_dir: Path | None,
    recorded: Callable[[StackState], str | None],
    default: str,
) -> str:
    """`explicit` if given, else $variable, else what stack.json records, else `default`."""
    if explicit:
        return explicit
    from_env = os.environ.get(variable)
    if from_env:
        return from_env
    state = read_state(data_dir or default_data_dir())
    found = recorded(state) if state is not None else None
    return found if found is not None else default


def gateway_address(explicit: str | None, data_dir: Path | None = None) -> str:
    """--gateway if given, else $LIENTHONG_GATEWAY_ADDRESS, else stack.json, else the default."""
    return _address(
        explicit,
        "LIENTHONG_GATEWAY_ADDRESS",
        data_dir,
        lambda state: state.gateway,
        StackState.defaults().gateway,
    )


def agency_address(name: str, explicit: str | None, data_dir: Path | None = None) -> str:
    """An agency's registry: `explicit` (--target) if given, else
    $LIENTHONG_<NAME>_ADDRESS, else the running stack's (stack.json), else
    the default port."""
    return _address(
        explicit,
        agency(name).address_variable,
        data_dir,
        lambda state: state.agencies.get(name),
        default_address(name),
    )
