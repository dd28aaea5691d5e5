"""Every contract the kit knows, and the list of its rules a team reads
before running it (conformance/RULES.md is this list, kept in step by a test)."""

from __future__ import annotations

from conformance import gateway, health, insurance, population
from conformance.kit import RuleBook

CONTRACTS: dict[str, RuleBook] = {
    "population": population.book,
    "insurance": insurance.book,
    "health": health.book,
    "gateway": gateway.book,
}


def rules_markdown() -> str:
    """RULES.md: every contract's rules, name and description."""
    lines = [
        "# Conformance rules",
        "",
        "Generated from the code by `python -m conformance` (a test fails when this file",
        "and the code disagree). `lienthong conform CONTRACT --list` prints the same.",
    ]
    for name, book in CONTRACTS.items():
        lines += ["", f"## {name} (`{book.service}`)", "", "| rule | what the server must do |"]
        lines.append("| --- | --- |")
        lines += [f"| `{r.name}` | {r.description} |" for r in book.rules]
    return "\n".join(lines) + "\n"
