"""`lienthong coverage`: a hospital's lookup against a real insurance registry
(in-process on an event loop of its own, real gRPC on loopback, a real
SQLite file); main() runs in the test's thread, as a user's command would.

The expected words and days are written here by hand (a girl born on
2024-03-10 holds a card valid to 30 September 2030).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from cli import main as cli_main
from cli.demo import Target, _hospital_lookup
from cli.state import StackState, write_state
from common.server import RunningRegistry, start_registry
from lienthong.common.v1.common_pb2 import SEX_FEMALE
from lienthong.gateway.v1 import gateway_pb2 as gw
from lienthong.insurance.v1 import insurance_pb2 as pb
from lienthong.insurance.v1 import insurance_pb2_grpc as pb_grpc
from services.insurance.app import build

TODAY = dt.date(2025, 9, 15)
CHILD = "001324000001"
STRANGER = "001185004321"


class Background:
    """An insurance registry on an event loop of its own, in a thread: main()
    must run in the main thread (it installs signal handlers) and blocks."""

    def __init__(self, database: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.running, self.store = self._await(self._start(database))
        self.address = f"127.0.0.1:{self.running.port}"

    def _await(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    @staticmethod
    async def _start(database: Path) -> tuple[RunningRegistry, Any]:
        # Built on the loop's thread: the store's SQLite connection is used there.
        bindings, store = build(database, today=lambda: TODAY)
        return await start_registry(bindings), store

    def stop(self) -> None:
        self._await(self.running.stop(None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Background]:
    """An insurance registry whose today is TODAY, holding the girl's card."""
    background = Background(tmp_path / "insurance.sqlite3")
    try:
        with grpc.insecure_channel(background.address) as channel:
            pb_grpc.InsuranceRegistryServiceStub(channel).IssueChildHealthInsuranceCard(
                pb.IssueChildHealthInsuranceCardRequest(
                    request_id="card",
                    personal_id_number=CHILD,
                    full_name="Nguyễn Thị Mai",
                    date_of_birth="2024-03-10",
                    sex=SEX_FEMALE,
                    province_code="001",
                    initial_facility_code="01003",
                    requested_on="2024-04-01",
                ),
                timeout=10,
            )
        yield background
    finally:
        background.stop()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli_main.main(["coverage", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def card_number(out: str) -> str:
    return out.split("card TE101", 1)[1][:10]


def test_covered_in_words(registry: Background, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, CHILD, "--target", registry.address)
    assert code == 0, err
    number = card_number(out)
    assert out.strip() == (
        f"{CHILD}: covered on 2025-09-15: card TE101{number}, group TE (a child under 6, "
        "paid by the State), benefit level 1, initial facility 01003, valid from 2024-03-10 "
        "to 2030-09-30."
    )


def test_not_covered_says_why_and_exits_0(
    registry: Background, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, CHILD, "--on", "2024-03-09", "--target", registry.address)
    assert code == 0, err
    assert out.startswith(
        f"{CHILD}: not covered on 2024-03-09: the card is valid only from 2024-03-10 (card TE101"
    ), out
    with grpc.insecure_channel(registry.address) as channel:
        pb_grpc.InsuranceRegistryServiceStub(channel).EndCoverage(
            pb.EndCoverageRequest(
                request_id="end", personal_id_number=CHILD, date_of_death="2024-05-02"
            ),
            timeout=10,
        )
    code, out, _ = run(capsys, CHILD, "--target", registry.address)
    assert code == 0
    assert "not covered on 2025-09-15: the card ended with the holder's death on 2024-05-02" in out


def test_a_person_without_an_insurance_record_is_an_answer(
    registry: Background, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, STRANGER, "--target", registry.address)
    assert code == 0
    assert out.strip() == (
        f"{STRANGER}: not covered: social security has no record of this personal ID number."
    )
    code, out, _ = run(capsys, STRANGER, "--target", registry.address, "--json")
    assert code == 0
    assert json.loads(out) == {
        "personal_id_number": STRANGER,
        "participant_found": False,
        "covered": False,
    }


def test_json_carries_the_contract_answer(
    registry: Background, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, CHILD, "--target", registry.address, "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["covered"] is True
    assert answer["not_covered_reason"] == "NOT_COVERED_REASON_UNSPECIFIED"
    assert answer["on_date"] == "2025-09-15"
    assert answer["card"]["initial_facility_code"] == "01003"
    assert answer["card"]["valid_to"] == "2030-09-30"


def test_the_running_stacks_registry_is_found_in_stack_json(
    registry: Background, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.delenv("LIENTHONG_INSURANCE_ADDRESS", raising=False)
    data_dir = tmp_path / "stack"
    data_dir.mkdir()
    stack = dataclasses.replace(
        StackState.defaults(), agencies={"insurance": registry.address}, data_dir=str(data_dir)
    )
    write_state(data_dir, stack)
    code, out, err = run(capsys, CHILD, "--data-dir", str(data_dir))
    assert code == 0, err
    assert "covered on 2025-09-15" in out


def test_a_bad_number_is_bad_input_naming_the_field(
    registry: Background, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "42", "--target", registry.address)
    assert code == 2
    assert "personal_id_number: must be a 12-digit personal identification number" in err
    code, _, err = run(capsys, CHILD, "--on", "2025-10-20", "--target", registry.address)
    assert code == 2
    assert "on_date: 2025-10-20 is in the future" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("day", ["2025-02-30", "15/09/2025"])
def test_a_bad_day_is_refused_before_any_call(day: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli_main.main(["coverage", CHILD, "--on", day, "--target", "127.0.0.1:1"])
    assert exited.value.code == 2
    assert "--on" in capsys.readouterr().err


def test_nobody_answering_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main.main(["coverage", CHILD, "--target", "127.0.0.1:1"])
    assert code == 1
    err = capsys.readouterr().err
    assert "cannot reach the insurance registry at 127.0.0.1:1" in err


def _completed_birth(personal_id: str) -> gw.Dossier:
    return gw.Dossier(
        state=gw.DOSSIER_STATE_COMPLETED,
        birth_result=gw.BirthResult(personal_id_number=personal_id),
    )


def test_the_demo_tells_the_hospitals_lookup_in_the_commands_words(
    registry: Background,
) -> None:
    problems: list[str] = []
    target = Target("", {"insurance": registry.address}, "")
    line = _hospital_lookup(target, _completed_birth(CHILD), problems)
    assert problems == []
    assert line.startswith(
        f"A hospital checks the child's coverage by ID number {CHILD}: covered on 2025-09-15: "
        "card TE101"
    ), line
    assert "initial facility 01003, valid from 2024-03-10 to 2030-09-30." in line


def test_the_demo_on_a_registry_without_check_coverage_says_so_and_goes_on() -> None:
    # A registry built against v1 as released knows no CheckCoverage.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        problems: list[str] = []
        target = Target("", {"insurance": f"127.0.0.1:{port}"}, "")
        line = _hospital_lookup(target, _completed_birth(CHILD), problems)
    finally:
        server.stop(None)
    assert problems == []
    assert "does not offer CheckCoverage" in line
    # Nobody answering at all is a problem: the demo fails.
    _hospital_lookup(
        Target("", {"insurance": "127.0.0.1:1"}, ""), _completed_birth(CHILD), problems
    )
    assert len(problems) == 1
    assert "coverage lookup at 127.0.0.1:1 failed: UNAVAILABLE" in problems[0]
