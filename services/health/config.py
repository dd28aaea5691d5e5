"""Settings of the hospital registry, from LIENTHONG_HEALTH_* variables."""

from __future__ import annotations

from common.config import RegistryConfig


def load_config() -> RegistryConfig:
    return RegistryConfig.for_agency("health")
