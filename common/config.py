"""Configuration from environment variables, with defaults that run locally."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from common.agencies import AGENCIES, GATEWAY_PORT, agency


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from None


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    raw = os.environ.get(name, "").strip().lower() or default
    if raw not in choices:
        raise SystemExit(f"{name} must be one of {', '.join(choices)}, got {raw[:100]!r}")
    return raw


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from None


# A date that records the past (a birth, a death, the day of a request) may
# name tomorrow only when tomorrow begins within this many seconds: a client
# whose clock runs a little ahead, just before midnight, is not refused.
CLOCK_TOLERANCE_VARIABLE = "LIENTHONG_CLOCK_TOLERANCE_SECONDS"
DEFAULT_CLOCK_TOLERANCE_SECONDS = 300.0


def clock_tolerance() -> dt.timedelta:
    seconds = env_float(CLOCK_TOLERANCE_VARIABLE, DEFAULT_CLOCK_TOLERANCE_SECONDS)
    if seconds < 0:
        raise SystemExit(f"{CLOCK_TOLERANCE_VARIABLE} must not be negative, got {seconds}")
    return dt.timedelta(seconds=seconds)


@dataclass(frozen=True)
class RegistryConfig:
    """What every registry needs; each service reads it under its own prefix,
    e.g. LIENTHONG_POPULATION_PORT, LIENTHONG_POPULATION_DB."""

    name: str
    host: str
    port: int
    # A SQLite path or a postgresql:// URL (common.database_url): a str,
    # because Path would fold a URL's // into /.
    database: str
    grace_seconds: float
    verbose: bool
    # How far past now a date recording the past may reach (clock_tolerance).
    clock_tolerance: dt.timedelta

    @classmethod
    def for_agency(cls, name: str) -> RegistryConfig:
        """The settings of the agency's registry, under its prefix and port."""
        return cls.from_env(name, agency(name).default_port)

    @classmethod
    def from_env(cls, name: str, default_port: int) -> RegistryConfig:
        prefix = f"LIENTHONG_{name.upper()}_"
        data_dir = Path(env_str("LIENTHONG_DATA_DIR", "data"))
        return cls(
            name=name,
            host=env_str(prefix + "HOST", "127.0.0.1"),
            port=env_int(prefix + "PORT", default_port),
            database=env_str(prefix + "DB", str(data_dir / f"{name}.sqlite3")),
            grace_seconds=env_float("LIENTHONG_GRACE_SECONDS", 5.0),
            verbose=env_str("LIENTHONG_VERBOSE", "1") not in ("0", "false", "no"),
            clock_tolerance=clock_tolerance(),
        )


# The gateway's and each agency's (common/agencies.py) default port.
DEFAULT_PORTS = {"gateway": GATEWAY_PORT} | {a.name: a.default_port for a in AGENCIES}
# Where each serves its Prometheus metrics on the default ports (`lienthong
# up`, docker compose): 9600 plus the gRPC port's last two digits, so 9650 is
# the gateway's and 9651 the population registry's.
METRICS_PORT_BASE = 9600
DEFAULT_METRICS_PORTS = {
    name: METRICS_PORT_BASE + port % 100 for name, port in DEFAULT_PORTS.items()
}
