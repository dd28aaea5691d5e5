"""The documented list of rules matches the code, and every RPC of each
contract is covered: a happy path at least, named after the RPC."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from google.protobuf import descriptor_pool

from conformance.contracts import CONTRACTS, rules_markdown

RULES_MD = Path(__file__).resolve().parents[2] / "conformance" / "RULES.md"


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_rules_md_is_the_list_in_the_code() -> None:
    assert RULES_MD.read_text(encoding="utf-8") == rules_markdown(), (
        "conformance/RULES.md is stale: `.venv/bin/python -m conformance > conformance/RULES.md`"
    )


@pytest.mark.parametrize("contract", sorted(CONTRACTS))
def test_every_rpc_has_a_happy_path_and_names_are_well_formed(contract: str) -> None:
    book = CONTRACTS[contract]
    names = [r.name for r in book.rules]
    assert len(names) == len(set(names))
    for name in names:
        assert re.fullmatch(rf"{contract}\.[a-z_]+\.[a-z0-9_]+", name), name
    service = descriptor_pool.Default().FindServiceByName(book.service)
    for method in service.methods:
        assert f"{contract}.{snake(method.name)}.happy_path" in names, method.name
    # The wire: undecodable bytes, health, reflection.
    for rule in ("undecodable_bytes", "health", "reflection"):
        assert f"{contract}.wire.{rule}" in names


@pytest.mark.parametrize("contract", sorted(CONTRACTS))
def test_every_rule_has_a_one_line_description(contract: str) -> None:
    for rule in CONTRACTS[contract].rules:
        assert rule.description and "\n" not in rule.description and "|" not in rule.description


def test_the_kit_imports_none_of_our_implementation() -> None:
    """Black-box: the kit's oracle must not be the code it judges."""
    ours = ("services", "gateway", "common", "cli", "scenarios", "brokers")
    imports = re.compile(r"^\s*(?:from|import)\s+([a-z_]+)", re.MULTILINE)
    for module in sorted(RULES_MD.parent.glob("*.py")):
        used = set(imports.findall(module.read_text(encoding="utf-8")))
        assert not used & set(ours), f"{module.name} imports {sorted(used & set(ours))}"
