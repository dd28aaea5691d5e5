"""main() runs inside the test suite: it gives the process back the logging
it found (tests/cli/test_chaos_replay.py once left structlog writing to its
closed capsys buffer, and the commit and outbox warnings of later tests
raised ValueError where they were logged)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from cli.main import main


def logging_state() -> tuple[object, ...]:
    root = logging.getLogger()
    return (
        structlog.get_config(),
        structlog.contextvars.get_contextvars(),
        root.handlers[:],
        root.level,
        logging.getLogger("aiokafka").level,
    )


def test_main_leaves_the_logging_as_it_found_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = logging_state()
    assert main(["replay", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read the file" in capsys.readouterr().err
    assert logging_state() == before


@pytest.fixture
def default_structlog() -> Iterator[None]:
    saved = structlog.get_config()
    structlog.reset_defaults()
    yield
    structlog.configure(**saved)


@pytest.mark.usefixtures("default_structlog")
def test_a_logger_used_inside_main_does_not_keep_its_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A module-level logger first used while main() runs (the replay engine's,
    # the brokers') follows the configuration that comes after main(): not
    # main()'s level (warnings only) nor its stdout.
    log = structlog.get_logger("probe")
    monkeypatch.setattr("cli.main._dispatch", lambda args: log.warning("inside") or 0)
    assert main(["replay", str(tmp_path / "any.yaml")]) == 0
    assert "inside" in capsys.readouterr().out
    with structlog.testing.capture_logs() as logs:
        log.info("after")
    assert [line["event"] for line in logs] == ["after"]
