"""Reading a scenario file's YAML fields, with errors that say where and what.

Every error names the file, the field's path (`arrival[1].rate_to`) and the
problem in words: a load tester fixing a scenario file should not need a
traceback to find the line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class ScenarioError(Exception):
    """A scenario file that cannot be used; the message says where and why."""

    def __init__(self, file: Path | str, path: str, problem: str) -> None:
        where = f"{file}: {path}" if path else str(file)
        super().__init__(f"{where}: {problem}")
        self.file = str(file)
        self.path = path
        self.problem = problem


def _describe(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _hint(value: object) -> str:
    """The two ways YAML surprises people with numbers."""
    if isinstance(value, str) and value.strip().endswith("%"):
        return " (write shares as fractions: 0.05, not 5%)"
    if isinstance(value, str) and "e" in value.lower() and value[:1].isdigit():
        return " (YAML reads 1e3 as text: write 1000 or 1.0e+3)"
    return ""


class Fields:
    """One YAML mapping of the file, read key by key; knows its own path."""

    def __init__(self, file: Path | str, path: str, value: object) -> None:
        if not isinstance(value, Mapping):
            raise ScenarioError(file, path, f"expected a mapping of fields, got {_describe(value)}")
        self.file = file
        self.path = path
        self.data: Mapping[Any, Any] = value
        self._known: set[str] = set()

    def where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, problem: str) -> ScenarioError:
        return ScenarioError(self.file, self.where(key), problem)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> object:
        self._known.add(key)
        return self.data.get(key)

    def expect(self, *keys: str) -> None:
        """Keys this mapping may hold though they were not read (alternatives)."""
        self._known.update(keys)

    def reject_unknown(self) -> None:
        """Unknown keys are errors: a misspelt `rate_too` must not silently mean 'flat'."""
        unknown = [str(key) for key in self.data if key not in self._known]
        if unknown:
            known = ", ".join(sorted(self._known))
            raise ScenarioError(
                self.file, self.where(unknown[0]), f"unknown field (known here: {known})"
            )

    def text(self, key: str, default: str | None = None) -> str:
        value = self.raw(key)
        if value is None:
            if default is None:
                raise self.error(key, "is required (a text)")
            return default
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"expected a non-empty text, got {_describe(value)}")
        return value.strip()

    def number(
        self,
        key: str,
        default: float | None = None,
        *,
        minimum: float = 0.0,
        maximum: float = math.inf,
        above_minimum: bool = False,
    ) -> float:
        value = self.raw(key)
        if value is None:
            if default is None:
                raise self.error(key, "is required (a number)")
            return default
        return check_number(
            self.file, self.where(key), value, minimum, maximum, above_minimum=above_minimum
        )

    def integer(self, key: str, default: int | None = None, *, minimum: int = 0) -> int:
        value = self.raw(key)
        if value is None:
            if default is None:
                raise self.error(key, "is required (a whole number)")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected a whole number, got {_describe(value)}{_hint(value)}")
        if value < minimum:
            raise self.error(key, f"must be at least {minimum}, got {value}")
        return value

    def mapping(self, key: str) -> Fields | None:
        value = self.raw(key)
        return None if value is None else Fields(self.file, self.where(key), value)

    def items(self, key: str) -> list[Fields]:
        """A list of mappings, each read with its index in the path."""
        value = self.raw(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(key, f"expected a list, got {_describe(value)}")
        return [Fields(self.file, f"{self.where(key)}[{i}]", item) for i, item in enumerate(value)]

    def numbers(self, key: str, *, length: int) -> list[float]:
        value = self.raw(key)
        if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != length:
            raise self.error(key, f"expected a list of {length} numbers, got {_describe(value)}")
        return [
            check_number(self.file, f"{self.where(key)}[{i}]", item, 0.0, math.inf)
            for i, item in enumerate(value)
        ]


def check_number(
    file: Path | str,
    path: str,
    value: object,
    minimum: float,
    maximum: float,
    *,
    above_minimum: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(file, path, f"expected a number, got {_describe(value)}{_hint(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise ScenarioError(file, path, f"must be a finite number, got {value}")
    if number < minimum or (above_minimum and number == minimum):
        bound = "greater than" if above_minimum else "at least"
        raise ScenarioError(file, path, f"must be {bound} {minimum:g}, got {value}")
    if number > maximum:
        raise ScenarioError(file, path, f"must be at most {maximum:g}, got {value}")
    return number
