"""The Kafka jar cache: fetched once, reused, and never trusted when half-filled."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from brokers import BrokerStartError
from brokers.kafka_jars import ensure_kafka_jars, kafka_version


def _fake_mvn(tmp_path: Path, *, fail: bool = False) -> tuple[str, Path]:
    """A stand-in for mvn that 'copies' one jar and counts its runs."""
    calls = tmp_path / "mvn-calls"
    script = tmp_path / "mvn"
    if fail:
        body = 'echo "[ERROR] Could not resolve dependencies: network is unreachable"\nexit 1\n'
    else:
        body = (
            'for arg in "$@"; do case "$arg" in -DoutputDirectory=*) out="${arg#*=}";; esac; done\n'
            'mkdir -p "$out" && echo jar > "$out/kafka_2.13-fake.jar"\n'
        )
    script.write_text(f"#!/bin/sh\necho run >> {calls}\n{body}")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script), calls


def _runs(calls: Path) -> int:
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def test_pinned_version_is_a_kafka_4() -> None:
    assert kafka_version().startswith("4.")


def test_fetch_once_then_reuse(tmp_path: Path) -> None:
    mvn, calls = _fake_mvn(tmp_path)
    libs = ensure_kafka_jars(root=tmp_path / "cache", mvn=mvn)
    assert libs == tmp_path / "cache" / f"kafka-{kafka_version()}" / "libs"
    assert (libs / "kafka_2.13-fake.jar").is_file()
    assert ensure_kafka_jars(root=tmp_path / "cache", mvn=mvn) == libs
    assert _runs(calls) == 1


def test_a_cache_without_its_marker_is_fetched_again(tmp_path: Path) -> None:
    mvn, calls = _fake_mvn(tmp_path)
    libs = ensure_kafka_jars(root=tmp_path / "cache", mvn=mvn)
    # As if a fetch had died after copying some jars but before the marker.
    (libs.parent / ".complete").unlink()
    ensure_kafka_jars(root=tmp_path / "cache", mvn=mvn)
    assert _runs(calls) == 2


def test_a_failed_fetch_says_why_and_leaves_no_complete_cache(tmp_path: Path) -> None:
    mvn, _ = _fake_mvn(tmp_path, fail=True)
    with pytest.raises(BrokerStartError, match="mvn failed") as caught:
        ensure_kafka_jars(root=tmp_path / "cache", mvn=mvn)
    assert "network is unreachable" in str(caught.value)
    assert not (tmp_path / "cache" / f"kafka-{kafka_version()}" / ".complete").exists()


def test_missing_maven_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerStartError, match=r"mvn \(Apache Maven\) is not on PATH"):
        ensure_kafka_jars(root=tmp_path / "cache")
