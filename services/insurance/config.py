"""Settings of the social security registry, from LIENTHONG_INSURANCE_* variables.

The base salary table is read from LIENTHONG_BASE_SALARY_CSV when set
(services.insurance.base_salary), so a decree can be followed without a release.
"""

from __future__ import annotations

from common.config import RegistryConfig


def load_config() -> RegistryConfig:
    return RegistryConfig.for_agency("insurance")
