"""find_binaries: Debian's per-version directories first (highest version), then PATH,
and a clear error naming what is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from databases import PostgresBinaries, PostgresBinariesNotFound, find_binaries
from tests.postgres_binaries import binaries_or_skip


def _programs(directory: Path, *names: str) -> Path:
    directory.mkdir(parents=True)
    for name in names:
        program = directory / name
        program.write_text("#!/bin/sh\nexit 0\n")
        program.chmod(0o755)
    return directory


def test_the_highest_debian_version_wins(tmp_path: Path) -> None:
    root = tmp_path / "postgresql"
    for version in ("9.6", "15", "16", "13"):
        _programs(root / version / "bin", "initdb", "postgres", "pg_isready")
    # A newer version without its server is not chosen.
    _programs(root / "17" / "bin", "pg_isready")
    found = find_binaries(versions_root=root, path="")
    assert found.initdb == root / "16" / "bin" / "initdb"
    assert found.postgres == root / "16" / "bin" / "postgres"
    assert found.pg_isready == root / "16" / "bin" / "pg_isready"


def test_path_is_searched_when_debian_has_none(tmp_path: Path) -> None:
    elsewhere = _programs(tmp_path / "opt" / "bin", "initdb", "postgres")
    empty = _programs(tmp_path / "empty" / "bin")
    found = find_binaries(
        versions_root=tmp_path / "missing", path=os.pathsep.join([str(empty), str(elsewhere)])
    )
    assert found.bin_dir == elsewhere
    assert found.pg_isready is None


def test_missing_binaries_are_named_with_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(PostgresBinariesNotFound) as caught:
        find_binaries(versions_root=tmp_path / "missing", path=str(tmp_path))
    message = str(caught.value)
    assert "no initdb and postgres" in message
    assert f"{tmp_path / 'missing'}/*/bin" in message
    assert "apt-get install postgresql" in message


def test_a_lone_initdb_is_not_enough(tmp_path: Path) -> None:
    only_initdb = _programs(tmp_path / "bin", "initdb")
    with pytest.raises(PostgresBinariesNotFound, match="no postgres in"):
        find_binaries(versions_root=tmp_path / "missing", path=str(only_initdb))


def test_this_machine_has_a_server() -> None:
    """Where CI runs, .ci/run installs PostgreSQL; elsewhere this says what to do."""
    found = binaries_or_skip()
    assert os.access(found.postgres, os.X_OK)


def _missing() -> PostgresBinaries:
    raise PostgresBinariesNotFound("no initdb and postgres; apt-get install postgresql")


def test_without_binaries_tests_skip_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    # BaseException: pytest's skip and fail outcomes are not Exceptions; a
    # narrower raises() would let a wrong outcome through as that outcome.
    with pytest.raises(BaseException, match="apt-get install postgresql") as caught:
        binaries_or_skip(_missing)
    assert caught.type is pytest.skip.Exception


def test_without_binaries_under_ci_tests_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(BaseException, match="CI is set and PostgreSQL is missing") as caught:
        binaries_or_skip(_missing)
    assert caught.type is pytest.fail.Exception
