"""`lienthong submit`: every bad file names the field and the problem, exit code 2,
never a traceback; a gateway's INVALID_ARGUMENT is told field by field.

main() runs in-process; the gateway is a fake GatewayService on a free port.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from cli import main as cli_main
from cli.declarations import idempotency_key, read_declaration
from lienthong.gateway.v1 import gateway_pb2 as gw
from lienthong.gateway.v1 import gateway_pb2_grpc as gw_grpc

EXAMPLES = Path(__file__).resolve().parents[2] / "scenarios" / "examples"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli_main.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(tmp_path: Path, text: str, name: str = "declaration.json") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def example(kind: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES / f"{kind}.json").read_text(encoding="utf-8"))
    return loaded


def assert_refused(code: int, err: str, *expected: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    for text in expected:
        assert text in err, f"{text!r} not in:\n{err}"


# A gateway that is never reached: every bad file is caught before any call.
UNREACHABLE = "127.0.0.1:1"


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.json"
    code, _, err = run(capsys, "submit", "birth", str(missing), "--gateway", UNREACHABLE)
    assert_refused(code, err, str(missing), "no such file")


def test_invalid_json_gives_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, '{\n  "child_full_name": "An",\n}\n')
    code, _, err = run(capsys, "submit", "birth", str(path), "--gateway", UNREACHABLE)
    assert_refused(code, err, "not valid JSON", "line 3, column 1")


def test_unknown_field_suggests_the_known_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = example("birth")
    document["chld_full_name"] = document.pop("child_full_name")
    path = write(tmp_path, json.dumps(document))
    code, _, err = run(capsys, "submit", "birth", str(path), "--gateway", UNREACHABLE)
    assert_refused(code, err, "chld_full_name: unknown field", "child_full_name")


def test_field_of_the_other_form_is_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A death declaration submitted as a birth: its fields are not Form 01's.
    path = write(tmp_path, json.dumps(example("death")))
    code, _, err = run(capsys, "submit", "birth", str(path), "--gateway", UNREACHABLE)
    assert_refused(code, err, "deceased_id_number: unknown field", "claim_funeral_allowance")


def test_wrong_types_name_the_nested_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = example("death")
    document["declarant"]["personal_id_number"] = 1078900001
    document["claim_funeral_allowance"] = "yes"
    document["payee"] = "Lê Minh Tuấn"
    path = write(tmp_path, json.dumps(document, ensure_ascii=False))
    code, _, err = run(capsys, "submit", "death", str(path), "--gateway", UNREACHABLE)
    assert_refused(
        code,
        err,
        "declarant.personal_id_number: must be a string, not the number 1078900001",
        "claim_funeral_allowance: must be true or false",
        "payee: must be a JSON object",
    )


def test_unknown_enum_value_lists_the_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = example("birth")
    document["child_sex"] = "FEMALE"
    path = write(tmp_path, json.dumps(document, ensure_ascii=False))
    code, _, err = run(capsys, "submit", "birth", str(path), "--gateway", UNREACHABLE)
    assert_refused(code, err, "child_sex: unknown value 'FEMALE'", "SEX_FEMALE")


def test_contract_rules_are_checked_before_sending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = example("birth")
    document["mother_id_number"] = "12345"
    document["child_date_of_birth"] = "03/11/2025"
    path = write(tmp_path, json.dumps(document, ensure_ascii=False))
    code, _, err = run(capsys, "submit", "birth", str(path), "--gateway", UNREACHABLE)
    assert_refused(
        code,
        err,
        "mother_id_number: must be empty or a 12-digit personal identification number",
        "child_date_of_birth: must be empty or a date written YYYY-MM-DD",
    )


def test_not_an_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "[1, 2]")
    code, _, err = run(capsys, "submit", "death", str(path), "--gateway", UNREACHABLE)
    assert_refused(code, err, "must be a JSON object, not an array")


def test_unreachable_gateway_is_a_failure_not_bad_input(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(
        capsys, "submit", "birth", str(EXAMPLES / "birth.json"), "--gateway", UNREACHABLE
    )
    assert code == 1
    assert "cannot reach 127.0.0.1:1" in err
    assert "Traceback" not in err


class FakeGateway(gw_grpc.GatewayServiceServicer):
    """Accepts births; refuses any child named "REFUSE" as the real gateway would."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def SubmitBirthDeclaration(
        self, request: gw.SubmitBirthDeclarationRequest, context: grpc.ServicerContext
    ) -> gw.SubmitBirthDeclarationResponse:
        self.keys.append(request.idempotency_key)
        if request.declaration.child_full_name == "BROKER DOWN":
            info = any_pb2.Any()
            info.Pack(error_details_pb2.ErrorInfo(reason="BROKER_UNAVAILABLE"))
            context.abort_with_status(
                rpc_status.to_status(
                    status_pb2.Status(
                        code=code_pb2.UNAVAILABLE,
                        message="the declaration is stored as dossier birth-9 and will be "
                        "worked once the message broker is back",
                        details=[info],
                    )
                )
            )
        if request.declaration.child_full_name == "REFUSE":
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field="declaration.child_date_of_birth",
                        description="must not be in the future",
                    )
                ]
            )
            detail = any_pb2.Any()
            detail.Pack(bad)
            context.abort_with_status(
                rpc_status.to_status(
                    status_pb2.Status(
                        code=code_pb2.INVALID_ARGUMENT,
                        message="invalid request: declaration.child_date_of_birth",
                        details=[detail],
                    )
                )
            )
        return gw.SubmitBirthDeclarationResponse(dossier_id=f"birth-{len(self.keys)}")

    # Not needed here; the generated base class declares them abstract.
    def SubmitDeathDeclaration(self, request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this fake")

    def GetDossier(self, request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this fake")

    def WatchDossier(self, request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this fake")

    def SupplementDossier(self, request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this fake")


@pytest.fixture
def fake_gateway() -> Iterator[tuple[str, FakeGateway]]:
    servicer = FakeGateway()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    gw_grpc.add_GatewayServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(None)


def submit_birth_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], address: str, child_full_name: str
) -> tuple[int, str]:
    """Submit the birth example with the child's name the fake gateway acts on."""
    document = example("birth")
    document["child_full_name"] = child_full_name
    path = write(tmp_path, json.dumps(document, ensure_ascii=False))
    code, _, err = run(capsys, "submit", "birth", str(path), "--gateway", address)
    return code, err


def test_gateway_field_violations_are_shown(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fake_gateway: tuple[str, FakeGateway],
) -> None:
    code, err = submit_birth_named(tmp_path, capsys, fake_gateway[0], "REFUSE")
    assert_refused(code, err, "declaration.child_date_of_birth: must not be in the future")


def test_submit_prints_the_dossier_id_and_keys_by_content(
    capsys: pytest.CaptureFixture[str], fake_gateway: tuple[str, FakeGateway]
) -> None:
    address, servicer = fake_gateway
    birth = str(EXAMPLES / "birth.json")
    code, out, err = run(capsys, "submit", "birth", birth, "--gateway", address)
    assert code == 0, err
    assert "birth-1" in out
    run(capsys, "submit", "birth", birth, "--gateway", address)
    run(capsys, "submit", "birth", birth, "--gateway", address, "--key", "mine")
    # Same file, same key: the gateway returns the same dossier for a retry.
    declaration = read_declaration(EXAMPLES / "birth.json", "birth")
    assert servicer.keys == [idempotency_key("birth", declaration)] * 2 + ["mine"]


def test_a_gateway_waiting_for_its_broker_is_not_reported_unreachable(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fake_gateway: tuple[str, FakeGateway],
) -> None:
    code, err = submit_birth_named(tmp_path, capsys, fake_gateway[0], "BROKER DOWN")
    assert code == 1
    assert "cannot reach" not in err
    assert "stored as dossier birth-9" in err and "BROKER_UNAVAILABLE" in err
