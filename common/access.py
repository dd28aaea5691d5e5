"""The access policy: which identity may call which method of which service.

Pure logic, no gRPC: the interceptor (common/rpc.py) asks `allows(caller,
method)` before a handler runs. The file is common/data/access_policy.yaml
(documented there), or the one `LIENTHONG_ACCESS_POLICY` names. Default deny:
a caller, service or method the file does not name is refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

POLICY_ENV = "LIENTHONG_ACCESS_POLICY"
BUNDLED = Path(__file__).parent / "data" / "access_policy.yaml"
EVERY_METHOD = "*"


class PolicyError(ValueError):
    """The policy file is malformed; the message names where."""


def _methods(value: Any, where: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(m, str) and m for m in value):
        raise PolicyError(f'{where}: expected a list of method names (or ["*"])')
    return frozenset(value)


@dataclass(frozen=True)
class AccessPolicy:
    # service → identity → method names ("*": all of them).
    grants: Mapping[str, Mapping[str, frozenset[str]]]
    # service → method names every authenticated caller may call.
    anyone: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, document: Any, *, source: str = "policy") -> AccessPolicy:
        if not isinstance(document, dict):
            raise PolicyError(f"{source}: expected a mapping with 'services'")
        unknown = set(document) - {"services", "any_identity"}
        if unknown:
            raise PolicyError(f"{source}: unknown keys {sorted(unknown)}")
        services = document.get("services") or {}
        anyone = document.get("any_identity") or {}
        if not isinstance(services, dict) or not isinstance(anyone, dict):
            raise PolicyError(f"{source}: 'services' and 'any_identity' are mappings")
        grants: dict[str, dict[str, frozenset[str]]] = {}
        for service, callers in services.items():
            if not isinstance(callers, dict):
                raise PolicyError(f"{source}: services.{service}: expected identity: [methods]")
            grants[str(service)] = {
                str(identity): _methods(methods, f"{source}: services.{service}.{identity}")
                for identity, methods in callers.items()
            }
        return cls(
            grants,
            {
                str(service): _methods(methods, f"{source}: any_identity.{service}")
                for service, methods in anyone.items()
            },
        )

    @classmethod
    def load(cls, path: Path | None = None) -> AccessPolicy:
        """The file at `path`, else $LIENTHONG_ACCESS_POLICY, else the bundled one."""
        chosen = path or Path(os.environ.get(POLICY_ENV) or BUNDLED)
        try:
            text = chosen.read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"cannot read the access policy {chosen}: {exc}") from None
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise PolicyError(f"{chosen}: not YAML: {exc}") from None
        return cls.parse(document, source=str(chosen))

    def allows(self, caller: str, method: str) -> bool:
        """Whether `caller` may call `method` ("/pkg.Service/Method" or "pkg.Service/Method")."""
        service, _, name = method.lstrip("/").partition("/")
        if _grants(self.anyone.get(service), name):
            return True
        return _grants(self.grants.get(service, {}).get(caller), name)


def _grants(methods: frozenset[str] | None, name: str) -> bool:
    return methods is not None and (EVERY_METHOD in methods or name in methods)


def refusal(caller: str, method: str) -> str:
    """The sentence a refused caller reads (and the server logs)."""
    return f"{caller} may not call {method.lstrip('/')}"
