"""Running PostgreSQL when we are root: it refuses to ("root execution of the
PostgreSQL server is not permitted"), so initdb and postgres run as an
unprivileged account instead: LIENTHONG_POSTGRES_USER if set, else `postgres`
(the account Debian's package creates) if it exists, else `nobody`; the data
directory is given to that account.

That account must be able to walk down to the data directory. pytest's
temporary directories (/tmp/pytest-of-root/...) are mode 0700, and pytest sets
that mode back at every session start (another pytest run on the machine would
undo a chmod of ours under a running server), so when some directory on the
way is closed to the account, the cluster is moved: it lives in
/tmp/lienthong-postgres/cluster-XXXX (the parent is root's, mode 0711: others
may pass through but not list it) and the data directory asked for becomes a
symbolic link to it. A later start on the same data directory follows the
link; `PostgresServer.remove()` deletes both. A run killed before it could
remove() leaves its cluster there; the next relocation deletes it once its
link is gone (pytest deletes old runs' directories) and its server is not running.

Not root: none of this happens; the server runs as us, in the directory asked for.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common.processes import pid_alive
from databases.binaries import PostgresError

USER_ENV_VAR = "LIENTHONG_POSTGRES_USER"
# The first that exists: PostgreSQL's own account, else the one every system has.
DEFAULT_USERS = ("postgres", "nobody")
RELOCATION_DIR_NAME = "lienthong-postgres"


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int


def server_account() -> Account | None:
    """Whom initdb and postgres run as; None: as this process (not root)."""
    if os.geteuid() != 0:
        return None
    chosen = os.environ.get(USER_ENV_VAR)
    for name in [chosen] if chosen else DEFAULT_USERS:
        try:
            entry = pwd.getpwnam(name)
            break
        except KeyError:
            continue
    else:
        wanted = repr(chosen) if chosen else " nor ".join(map(repr, DEFAULT_USERS))
        raise PostgresError(
            f"PostgreSQL does not run as root, and there is no account {wanted} to run it "
            f"as; set {USER_ENV_VAR} to an unprivileged account"
        )
    if entry.pw_uid == 0:
        raise PostgresError(f"{USER_ENV_VAR}={name!r} is root; PostgreSQL refuses to run as root")
    return Account(name, entry.pw_uid, entry.pw_gid)


def closed_directory(path: Path, account: Account) -> Path | None:
    """The first existing directory on the way to `path` that `account` may not
    enter (no search permission for it), or None. POSIX mode bits only (no ACLs)."""
    absolute = Path(os.path.abspath(path))
    for directory in [*reversed(absolute.parents), absolute]:
        try:
            info = directory.stat()
        except FileNotFoundError:
            return None  # What does not exist yet, we create (and give away).
        if info.st_uid == account.uid:
            bit = stat.S_IXUSR
        elif info.st_gid == account.gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return directory
    return None


def give(path: Path, account: Account) -> None:
    os.chown(path, account.uid, account.gid)


def _relocation_root() -> Path:
    root = Path(tempfile.gettempdir()) / RELOCATION_DIR_NAME
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o711)
    # /tmp is writable by all: trust only a real directory of root's.
    info = root.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0:
        raise PostgresError(f"{root} is not a directory owned by root; remove it and try again")
    root.chmod(0o711)
    return root


def cluster_directory(data_dir: Path, account: Account | None) -> Path:
    """Where the cluster's files really are for `data_dir`, ready for initdb or postgres.

    Follows a link left by an earlier relocation. Not root: `data_dir` itself.
    """
    real = data_dir.resolve()
    if account is None:
        real.parent.mkdir(parents=True, exist_ok=True)
        return real
    blocker = closed_directory(real, account)
    if blocker is None:
        fresh = not real.exists()
        real.mkdir(mode=0o700, parents=True, exist_ok=True)
        if fresh or not any(real.iterdir()):
            give(real, account)
        return real
    if real.exists() and any(real.iterdir()):
        raise PostgresError(
            f"{real} is not empty and PostgreSQL, run as {account.name!r} because we are root, "
            f"cannot reach it: {blocker} is closed to {account.name!r} "
            f"(mode {stat.S_IMODE(blocker.stat().st_mode):04o}); "
            "use a data directory that account can reach, e.g. under /tmp"
        )
    root = _relocation_root()
    sweep_orphans(root)
    cluster = Path(tempfile.mkdtemp(prefix="cluster-", dir=root))
    give(cluster, account)
    if data_dir.is_symlink():
        data_dir.unlink()  # Its target is gone (a /tmp cleaner): start afresh.
    elif real.exists():
        real.rmdir()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    data_dir.symlink_to(cluster, target_is_directory=True)
    # Written last: a cluster with this file has its link, so the sweep may judge it.
    _origin_file(cluster).write_text(str(Path(os.path.abspath(data_dir))), encoding="utf-8")
    return cluster


def _origin_file(cluster: Path) -> Path:
    return cluster.with_name(cluster.name + ".origin")


def forget_moved(cluster: Path) -> None:
    """Remove a moved cluster's .origin record (the cluster is being deleted)."""
    _origin_file(cluster).unlink(missing_ok=True)


def _server_alive(cluster: Path) -> bool:
    """Whether postmaster.pid names a live process (its first line is the pid)."""
    try:
        pid = int((cluster / "postmaster.pid").read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return pid_alive(pid)


def sweep_orphans(root: Path) -> list[Path]:
    """Delete moved clusters whose data directory link is gone and whose server
    is not running: what a run killed before its teardown left behind, once
    pytest has deleted that run's temporary directory. A cluster still being
    set up (no .origin file yet) is left alone. Returns what was deleted."""
    removed = []
    for origin in root.glob("cluster-*.origin"):
        cluster = origin.with_suffix("")
        try:
            link = Path(origin.read_text(encoding="utf-8"))
        except OSError:
            continue
        linked = link.is_symlink() and os.path.realpath(link) == str(cluster)
        if linked or _server_alive(cluster):
            continue
        shutil.rmtree(cluster, ignore_errors=True)
        origin.unlink(missing_ok=True)
        removed.append(cluster)
    return removed
