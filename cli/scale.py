"""How big a stack the CLI starts: `--store`, `--gateways N`, `--replicas M`
(the processes are started by cli/stack.py; the store by cli/store.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.database_url import redacted


@dataclass(frozen=True)
class Scale:
    store: str = "sqlite"
    gateways: int = 1
    replicas: int = 1

    def stack_settings(self) -> dict[str, Any]:
        """Stack(...)'s keyword arguments for this scale."""
        return {"store": self.store, "gateways": self.gateways, "replicas": self.replicas}

    def describe(self) -> str:
        """ ", store postgres, 2 gateways, 2 replicas each": what differs from the default."""
        said = [f"store {redacted(self.store)}"] if self.store != "sqlite" else []
        if self.gateways > 1:
            said.append(f"{self.gateways} gateways")
        if self.replicas > 1:
            said.append(f"{self.replicas} replicas of each registry")
        return "".join(f", {part}" for part in said)
