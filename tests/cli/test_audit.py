"""`lienthong audit` on logs written here (the end-to-end run is in
test_audit_end_to_end.py): what it prints and its exit codes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from cli import audit
from cli.main import main
from common import message_log
from common.message_log import MessageLog, Signer
from common.rpc import CallRecord
from lienthong.gateway.v1 import gateway_pb2 as gw
from lienthong.population.v1 import population_pb2 as pop


def test_the_cli_knows_the_logs_by_the_same_suffix() -> None:
    # Kept apart so that every `lienthong` command does not import the log's code.
    assert audit.SUFFIX == message_log.SUFFIX


def _write(directory: Path, process: str, calls: list[CallRecord]) -> None:
    log = MessageLog(directory, process, Signer.for_log_directory(directory, process))
    for record in calls:
        log.observe(record)
    log.close()


def _call(second: int, method: str, request: object, response: object = None) -> CallRecord:
    return CallRecord(
        at=dt.datetime(2026, 11, 30, 2, 0, second, tzinfo=dt.UTC),
        caller="gateway" if "population" in method else "lienthong-cli",
        method=method,
        code="OK",
        reason="",
        correlation_id="c",
        duration_ms=2.5,
        request=[request],  # type: ignore[list-item]
        response=[response] if response is not None else None,  # type: ignore[list-item]
    )


@pytest.fixture
def stack_dir(tmp_path: Path) -> Path:
    messages = tmp_path / "messages"
    # Written out of time order across the two logs: the trail sorts them.
    _write(
        messages,
        "population",
        [
            _call(
                3,
                "/lienthong.population.v1.PopulationRegistryService/RegisterBirth",
                pop.RegisterBirthRequest(request_id="birth-1/register_birth"),
            ),
            _call(
                4,
                "/lienthong.population.v1.PopulationRegistryService/RegisterBirth",
                pop.RegisterBirthRequest(request_id="birth-2/register_birth"),
            ),
        ],
    )
    _write(
        messages,
        "gateway",
        [
            _call(
                1,
                "/lienthong.gateway.v1.GatewayService/SubmitBirthDeclaration",
                gw.SubmitBirthDeclarationRequest(idempotency_key="k"),
                gw.SubmitBirthDeclarationResponse(dossier_id="birth-1"),
            )
        ],
    )
    return tmp_path


def test_trail_shows_one_dossier_in_time_order_with_who_called_whom(
    stack_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "trail", "birth-1", "--data-dir", str(stack_dir)]) == 0
    out = capsys.readouterr().out
    submit = out.index("lienthong-cli → gateway (GatewayService)")
    register = out.index("gateway → population (PopulationRegistryService)")
    assert submit < register
    assert "SubmitBirthDeclaration" in out and "RegisterBirth" in out
    assert out.count("RegisterBirth ") == 1  # birth-2's call is not birth-1's


def test_verify_accepts_a_data_directory_and_fails_on_a_changed_byte(
    stack_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "verify", str(stack_dir)]) == 0
    assert "All 2 logs verify" in capsys.readouterr().out
    log = stack_dir / "messages" / "gateway.jsonl"
    data = bytearray(log.read_bytes())
    data[data.index(b'"caller":"') + len(b'"caller":"')] ^= 0x01
    log.write_bytes(bytes(data))
    assert main(["audit", "verify", str(stack_dir / "messages")]) == 1
    assert f"{log}:2: altered" in capsys.readouterr().out


def test_nothing_to_read_is_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", str(tmp_path)]) == 1
    assert "no message log (*.jsonl)" in capsys.readouterr().err
    assert main(["audit", "verify", str(tmp_path / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert main(["audit", "trail", "birth-1", "--data-dir", str(tmp_path)]) == 1
    assert "no message log" in capsys.readouterr().err
