"""Build a registry for the kit's tests: ours as it is, or a broken variant
of it (a servicer subclass swapped into its binding). The variants live here,
in the tests, and nowhere near the kit: the kit must find them on its own."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.server import ServiceBinding
from conformance.runner import Verdict

Builder = Callable[[Path], tuple[list[ServiceBinding], Any]]


def with_servicer(build: Builder, servicer_class: type[Any]) -> Builder:
    """`build`, its servicer replaced by `servicer_class` (a subclass of
    ours) over the same registry and store: our servicer, its class swapped,
    so the variant needs no knowledge of how ours is constructed."""

    def _build(database: Path) -> tuple[list[ServiceBinding], Any]:
        bindings, store = build(database)
        ours = bindings[0]
        variant = copy.copy(ours.servicer)
        variant.__class__ = servicer_class
        broken = ServiceBinding(variant, ours.add_to_server, ours.full_name)
        return [broken, *bindings[1:]], store

    return _build


def failed(verdicts: list[Verdict]) -> dict[str, str]:
    """The rules that failed, with their evidence."""
    return {v.rule.name: v.evidence for v in verdicts if not v.passed}
