"""Whether the tests that need PostgreSQL run here: skipped, saying why, where
its programs are missing, unless CI is set: CI must not pass by skipping them."""

from __future__ import annotations

from collections.abc import Callable

from databases import PostgresBinaries, PostgresBinariesNotFound, find_binaries
from tests.machine import found_or_skip


def binaries_or_skip(find: Callable[[], PostgresBinaries] = find_binaries) -> PostgresBinaries:
    return found_or_skip(find, PostgresBinariesNotFound, "PostgreSQL")
