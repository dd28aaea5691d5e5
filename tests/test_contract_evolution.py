"""`buf breaking` against the released v1 (proto/baseline/v1.binpb) bites.

`make lint` runs `buf breaking --against proto/baseline/v1.binpb` on the tree
itself; these tests copy proto/ and buf.yaml (so the project's own rule set
applies) into a temporary folder, change the copy the way a team might, and
check what the same command says: a change that would break another agency
fails and names what broke, one that would not passes. The expected messages
are buf's own words, not computed here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "proto" / "baseline" / "v1.binpb"
# buf-bin (a dev dependency) puts the binary beside the interpreter.
BUF = Path(sys.executable).parent / "buf"

POPULATION = "proto/lienthong/population/v1/population.proto"
EVENTS = "proto/lienthong/events/v1/events.proto"
GATEWAY = "proto/lienthong/gateway/v1/gateway.proto"


def _copy_of_the_contracts(tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "proto", copy / "proto", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "buf.yaml", copy / "buf.yaml")
    return copy


def _edit(repo: Path, file: str, old: str, new: str) -> None:
    path = repo / file
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{file} no longer holds {old!r} once: update this test"
    path.write_text(text.replace(old, new), encoding="utf-8")


def _breaking(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUF), "breaking", "--against", str(BASELINE)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_baseline_holds_every_v1_package() -> None:
    # The image is what the check compares with: if it lost a package, that
    # package could change freely. `buf ls-files` lists an image's files.
    listed = subprocess.run(
        [str(BUF), "ls-files", str(BASELINE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    ours = {p for p in listed if p.startswith("lienthong/")}
    assert ours == {
        "lienthong/common/v1/common.proto",
        "lienthong/events/v1/events.proto",
        "lienthong/gateway/v1/gateway.proto",
        "lienthong/health/v1/health.proto",
        "lienthong/insurance/v1/insurance.proto",
        "lienthong/population/v1/population.proto",
    }


BREAKING = {
    "a field deleted": (
        EVENTS,
        "  string supplement_id = 2;\n",
        "",
        'Previously present field "2" with name "supplement_id" on message '
        '"DossierSupplemented" was deleted.',
    ),
    # Deleting is breaking even with the number and name reserved: the wire
    # would cope, but every team's generated code loses the field.
    "a field deleted and reserved": (
        POPULATION,
        "  string place_of_birth = 5 [(buf.validate.field).string.max_len = 200];\n",
        '  reserved 5;\n  reserved "place_of_birth";\n',
        'Previously present field "5" with name "place_of_birth" on message "Citizen" was deleted.',
    ),
    "a field's type changed": (
        EVENTS,
        "  int32 attempts = 5;",
        "  string attempts = 5;",
        'Field "5" with name "attempts" on message "StepOutcome" changed type from "int32" '
        'to "string".',
    ),
    "a field renumbered": (
        EVENTS,
        "  int32 attempts = 5;",
        "  int32 attempts = 13;",
        'Previously present field "5" with name "attempts" on message "StepOutcome" was deleted.',
    ),
    # The JSON mapping is a contract too (declaration files, grpcurl).
    "a field renamed": (
        POPULATION,
        "  string full_name = 2 [",
        "  string name = 2 [",
        'Field "2" on message "Citizen" changed name from "full_name" to "name".',
    ),
    # WIRE_JSON would let this through: the gRPC path /package.Service/Method
    # is the contract between agencies as much as the messages are.
    "an RPC renamed": (
        POPULATION,
        "  rpc GetCitizen(GetCitizenRequest)",
        "  rpc FetchCitizen(GetCitizenRequest)",
        'Previously present RPC "GetCitizen" on service "PopulationRegistryService" was deleted.',
    ),
    "an enum value deleted": (
        GATEWAY,
        "  DOSSIER_STATE_COMPLETED_WITH_REFUSALS = 6;\n",
        "",
        'Previously present enum value "6" on enum "DossierState" was deleted.',
    ),
}


@pytest.mark.parametrize("change", list(BREAKING))
def test_a_breaking_change_fails_and_is_named(tmp_path: Path, change: str) -> None:
    file, old, new, expected = BREAKING[change]
    repo = _copy_of_the_contracts(tmp_path)
    _edit(repo, file, old, new)
    checked = _breaking(repo)
    assert checked.returncode != 0, f"buf breaking let {change} through:\n{checked.stdout}"
    assert expected in checked.stdout, checked.stdout + checked.stderr
    assert file in checked.stdout  # it says where


def test_moving_a_message_to_another_file_of_its_package_is_breaking(tmp_path: Path) -> None:
    # What FILE catches and PACKAGE would not: generated Python is imported
    # by file (lienthong.events.v1.events_pb2), so a move breaks importers.
    repo = _copy_of_the_contracts(tmp_path)
    moved = "message SupplementWindowExpired {\n  string dossier_id = 1;\n}\n"
    _edit(repo, EVENTS, moved, "")
    (repo / "proto/lienthong/events/v1/sweeper.proto").write_text(
        'syntax = "proto3";\n\npackage lienthong.events.v1;\n\n' + moved, encoding="utf-8"
    )
    checked = _breaking(repo)
    assert checked.returncode != 0, checked.stdout
    assert 'Previously present message "SupplementWindowExpired" was deleted from file.' in (
        checked.stdout
    ), checked.stdout + checked.stderr


NOT_BREAKING = {
    "a field added": (
        POPULATION,
        "  string date_of_death = 13 [",
        "  string nickname = 14;\n  string date_of_death = 13 [",
    ),
    "an enum value added": (
        GATEWAY,
        "  DOSSIER_STATE_COMPLETED_WITH_REFUSALS = 6;\n",
        "  DOSSIER_STATE_COMPLETED_WITH_REFUSALS = 6;\n  DOSSIER_STATE_WITHDRAWN = 7;\n",
    ),
    "a field deprecated": (
        POPULATION,
        "  string place_of_birth = 5 [",
        "  string place_of_birth = 5 [deprecated = true, ",
    ),
    "an RPC added": (
        POPULATION,
        "  rpc GetCitizen(GetCitizenRequest) returns (GetCitizenResponse);\n",
        "  rpc GetCitizen(GetCitizenRequest) returns (GetCitizenResponse);\n"
        "  rpc CountCitizens(CountCitizensRequest) returns (CountCitizensResponse);\n",
    ),
}


@pytest.mark.parametrize("change", list(NOT_BREAKING))
def test_an_additive_change_passes(tmp_path: Path, change: str) -> None:
    file, old, new = NOT_BREAKING[change]
    repo = _copy_of_the_contracts(tmp_path)
    _edit(repo, file, old, new)
    if change == "an RPC added":
        with (repo / file).open("a", encoding="utf-8") as proto:
            proto.write("\nmessage CountCitizensRequest {}\n\nmessage CountCitizensResponse {}\n")
    checked = _breaking(repo)
    assert checked.returncode == 0, checked.stdout + checked.stderr
