"""Settings of the hospital registry, from LIENTHONG_HEALTH_* variables."""

from __future__ import annotations

from common.config import DEFAULT_PORTS, RegistryConfig


def load_config() -> RegistryConfig:
    return RegistryConfig.from_env("health", DEFAULT_PORTS["health"])
