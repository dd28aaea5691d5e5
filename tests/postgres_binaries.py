"""Whether the tests that need PostgreSQL run here: skipped, saying why, where
its programs are missing, unless CI is set: CI must not pass by skipping them."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from databases import PostgresBinaries, PostgresBinariesNotFound, find_binaries


def binaries_or_skip(find: Callable[[], PostgresBinaries] = find_binaries) -> PostgresBinaries:
    try:
        return find()
    except PostgresBinariesNotFound as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and PostgreSQL is missing: {exc}", pytrace=False)
        pytest.skip(str(exc))
