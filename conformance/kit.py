"""The kit's vocabulary: a rule, the context it runs in, how it fails.

A rule is a name (`<contract>.<rpc>.<what>`), a one-line description a team
reads before running the kit, and an async check. The check gets a Context
(the channel to the server under test, fresh identifiers, today's date) and
returns its evidence (what the server said) or raises Failure with the
evidence of what went wrong. Each rule creates what it needs through the
contract, with identifiers of its own, so rules are independent of each
other and of whatever else the server holds.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import grpc

# Civil dates are Vietnamese calendar days: the servers judge "in the future"
# and lateness by Vietnam's date, so the kit builds its dates from it too.
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
# A server under test answers each call within this, or the rule fails.
CALL_TIMEOUT_SECONDS = 10.0
EVIDENCE_LIMIT = 300


class Failure(Exception):
    """The server did not honour the rule; the message is the evidence."""


def cap(text: str, limit: int = EVIDENCE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Fresh:
    """Identifiers no other run has used: random, so the kit can run again and
    again against one long-lived server without meeting its own earlier data."""

    def token(self, length: int = 10) -> str:
        """Capital letters and digits: fits every document-number pattern."""
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
        return "".join(secrets.choice(alphabet) for _ in range(length))

    def request_id(self) -> str:
        return f"conform-{self.token(16).lower()}"

    def digits(self, count: int) -> str:
        return "".join(secrets.choice("0123456789") for _ in range(count))


@dataclass
class Context:
    channel: grpc.aio.Channel
    fresh: Fresh = field(default_factory=Fresh)
    today: dt.date = field(default_factory=lambda: dt.datetime.now(VIETNAM).date())


Check = Callable[[Context], Awaitable[str]]


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    check: Check


class RuleBook:
    """The rules of one contract, in the order they are declared (and run)."""

    def __init__(self, contract: str, service: str) -> None:
        self.contract = contract
        # The full name of the gRPC service the contract defines.
        self.service = service
        self.rules: list[Rule] = []

    def rule(self, name: str, description: str) -> Callable[[Check], Check]:
        """Decorator: register `check` under `<contract>.<name>`."""

        def register(check: Check) -> Check:
            full = f"{self.contract}.{name}"
            if any(r.name == full for r in self.rules):
                raise ValueError(f"rule {full} is declared twice")
            self.rules.append(Rule(full, description, check))
            return check

        return register

    def select(self, patterns: list[str]) -> list[Rule]:
        """The rules whose name contains any of `patterns` (all when none)."""
        if not patterns:
            return list(self.rules)
        return [r for r in self.rules if any(p in r.name for p in patterns)]
