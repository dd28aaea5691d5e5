"""What a test needs from the machine (PostgreSQL's programs, a Chromium):
found, or the test skipped saying why, unless CI is set: CI must not pass by
skipping them (`.ci/run` installs both where they are missing)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def found_or_skip(find: Callable[[], T], missing: type[Exception], what: str) -> T:
    """`find()`'s answer; if it raises `missing`: skip with its message, or
    fail when CI is set."""
    try:
        return find()
    except missing as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {what} is missing: {exc}", pytrace=False)
        pytest.skip(str(exc))
