"""Apache Kafka's jars, fetched once from Maven Central into a cache folder.

No Apache release tarball can be downloaded here, but Maven Central has every
jar the broker needs: ``brokers/kafka-pom.xml`` lists them and
``mvn dependency:copy-dependencies`` copies them (and their dependencies) into
``${LIENTHONG_CACHE:-~/.cache/lienthong}/kafka-<version>/libs``.

A fetch that dies half-way must not leave a cache that looks complete: jars go
to a temporary folder, which is renamed into place, and only then is the
marker file (holding the pom's hash) written. A pom edit changes the hash and
so triggers a new fetch. A file lock serialises concurrent first starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.resources
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import structlog

from brokers._core import BrokerStartError
from brokers._process import tail

log = structlog.get_logger(__name__)

_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
_MARKER = ".complete"
_MVN_TIMEOUT_SECONDS = 600


def pom_text() -> str:
    return importlib.resources.files("brokers").joinpath("kafka-pom.xml").read_text("utf-8")


def kafka_version() -> str:
    """The Kafka release pinned in kafka-pom.xml (its ``kafka.version`` property)."""
    node = ET.fromstring(pom_text()).find("m:properties/m:kafka.version", _POM_NS)
    if node is None or not (node.text or "").strip():
        raise BrokerStartError("brokers/kafka-pom.xml has no <kafka.version> property")
    return (node.text or "").strip()


def cache_root() -> Path:
    configured = os.environ.get("LIENTHONG_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "lienthong"


def _pom_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _is_complete(home: Path, pom_hash: str) -> bool:
    marker = home / _MARKER
    try:
        return marker.read_text("utf-8").strip() == pom_hash and any((home / "libs").glob("*.jar"))
    except OSError:
        return False


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_kafka_jars(*, root: Path | None = None, mvn: str | None = None) -> Path:
    """The folder of Kafka's runtime jars, fetching them with Maven if not cached."""
    text = pom_text()
    pom_hash = _pom_hash(text)
    home = (root or cache_root()) / f"kafka-{kafka_version()}"
    libs = home / "libs"
    if _is_complete(home, pom_hash):
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with _locked(home / ".lock"):
        # Another process may have finished the fetch while we waited for the lock.
        if _is_complete(home, pom_hash):
            return libs
        (home / _MARKER).unlink(missing_ok=True)
        (home / "pom.xml").write_text(text, "utf-8")
        staging = home / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        _run_maven(mvn, home, staging)
        if not any(staging.glob("*.jar")):
            raise BrokerStartError(f"mvn copied no jars into {staging}; see {home / 'mvn.log'}")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        # Written last: its presence (with the right hash) is what "complete" means.
        tmp_marker = home / f"{_MARKER}.tmp"
        tmp_marker.write_text(pom_hash + "\n", "utf-8")
        tmp_marker.replace(home / _MARKER)
    return libs


def _run_maven(mvn: str | None, home: Path, staging: Path) -> None:
    executable = mvn or shutil.which("mvn")
    if executable is None:
        raise BrokerStartError(
            "mvn (Apache Maven) is not on PATH: the apache broker fetches Kafka's jars "
            "from Maven Central with it. Install Maven, or use --broker embedded"
        )
    log_path = home / "mvn.log"
    argv = [
        executable,
        "--batch-mode",
        "--quiet",
        "-Dstyle.color=never",
        "--file",
        str(home / "pom.xml"),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    log.info("fetching kafka jars", version=kafka_version(), into=str(home))
    with log_path.open("wb") as sink:
        try:
            result = subprocess.run(
                argv,
                cwd=home,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                timeout=_MVN_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerStartError(
                f"mvn did not fetch Kafka's jars within {_MVN_TIMEOUT_SECONDS} s; see {log_path}"
            ) from exc
        except OSError as exc:
            raise BrokerStartError(f"could not run {executable}: {exc}") from exc
    if result.returncode != 0:
        raise BrokerStartError(
            f"mvn failed (exit code {result.returncode}) fetching Kafka {kafka_version()}'s jars "
            f"from Maven Central; last lines of {log_path}:\n{tail(log_path, 20)}"
        )
