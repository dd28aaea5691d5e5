"""Finding PostgreSQL's server programs (initdb, postgres) on this machine.

Debian and Ubuntu install them per major version under
/usr/lib/postgresql/<version>/bin, off PATH (their /usr/bin holds wrappers
that manage system clusters); other systems (Homebrew, the EDB installers, a
source build) put them on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

DEBIAN_VERSIONS_ROOT = Path("/usr/lib/postgresql")
INSTALL_HINT = (
    "install PostgreSQL's server: `apt-get install postgresql` on Debian/Ubuntu "
    "(the cluster service it sets up is not needed), or put the bin directory holding "
    "initdb and postgres on PATH"
)


class PostgresError(RuntimeError):
    """A PostgreSQL server could not be found, started or used; the message is for a person."""


class PostgresBinariesNotFound(PostgresError):
    pass


@dataclass(frozen=True)
class PostgresBinaries:
    initdb: Path
    postgres: Path
    # Not needed to run a server; handy to probe one from a shell.
    pg_isready: Path | None

    @property
    def bin_dir(self) -> Path:
        return self.postgres.parent


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _version_key(directory: Path) -> tuple[int, ...]:
    """'15' → (15,), '9.6' → (9, 6); names that are not versions sort last."""
    name = directory.parent.name
    if not re.fullmatch(r"\d+(\.\d+)*", name):
        return (-1,)
    return tuple(int(part) for part in name.split("."))


def debian_bin_dirs(versions_root: Path = DEBIAN_VERSIONS_ROOT) -> list[Path]:
    """<versions_root>/*/bin, the highest major version first."""
    if not versions_root.is_dir():
        return []
    return sorted(versions_root.glob("*/bin"), key=_version_key, reverse=True)


def _in_dir(directory: Path) -> PostgresBinaries | None:
    initdb, postgres = directory / "initdb", directory / "postgres"
    if not (_executable(initdb) and _executable(postgres)):
        return None
    pg_isready = directory / "pg_isready"
    return PostgresBinaries(initdb, postgres, pg_isready if _executable(pg_isready) else None)


def find_binaries(
    *, versions_root: Path = DEBIAN_VERSIONS_ROOT, path: str | None = None
) -> PostgresBinaries:
    """initdb and postgres from one directory: Debian's layout first, then PATH.

    `path` stands for $PATH (tests inject both places). One directory for both
    programs: an initdb of one major version writes a data directory that the
    postgres of another refuses.
    """
    for directory in debian_bin_dirs(versions_root):
        found = _in_dir(directory)
        if found is not None:
            return found
    search = os.environ.get("PATH", "") if path is None else path
    initdb = shutil.which("initdb", path=search)
    if initdb is not None:
        found = _in_dir(Path(initdb).parent)
        if found is not None:
            return found
    postgres = shutil.which("postgres", path=search)
    missing = [name for name, hit in (("initdb", initdb), ("postgres", postgres)) if hit is None]
    what = " and ".join(missing) if missing else "initdb and postgres in one directory"
    raise PostgresBinariesNotFound(
        f"PostgreSQL's server programs were not found: no {what} in "
        f"{versions_root}/*/bin nor on PATH; {INSTALL_HINT}"
    )
