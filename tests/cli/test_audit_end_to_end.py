"""The message log's done-when, as a user runs it: `lienthong demo` on a fresh
stack (embedded Kafka, real processes), then `lienthong audit verify` passes on
the stack's logs, `lienthong audit trail` shows the birth dossier's exchanges
in order, and one byte changed in one log makes verify fail naming the file
and the line."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.cli.running import run

# The birth group's agency calls in the order its steps make them, written
# out by hand from gateway/procedures.py and gateway/steps.py (the oracle).
BIRTH_AGENCY_CALLS = [
    ("health", "VerifyBirthCertificate"),
    ("health", "GetFacility"),
    ("population", "RegisterBirth"),
    ("population", "RegisterPermanentResidence"),
    ("insurance", "IssueChildHealthInsuranceCard"),
]


def lienthong(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "LIENTHONG_DATA_DIR": str(tmp_path / "data"),
        # The demo's fresh stack (kept for its logs) lands in the test's directory.
        "TMPDIR": str(tmp_path),
        "COLUMNS": "200",
    }
    return run(
        args,
        cwd=tmp_path,
        env=env,
        timeout=timeout,
    )


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.timeout(200)
def test_after_the_demo_the_logs_verify_show_the_birth_and_catch_one_changed_byte(
    tmp_path: Path,
) -> None:
    demo = lienthong(tmp_path, "demo", "--broker", "embedded", "--new-stack", timeout=180)
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output
    logs = re.search(r"lienthong audit verify (\S+)", output)
    birth = re.search(r"Submitted birth dossier (\S+) and", output)
    assert logs is not None and birth is not None, output
    directory, birth_id = Path(logs.group(1)), birth.group(1)
    assert directory.is_relative_to(tmp_path)

    verified = lienthong(tmp_path, "audit", "verify", str(directory))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    for server in ("gateway", "population", "insurance", "health"):
        assert f"✓ {directory / server}.jsonl" in verified.stdout, verified.stdout

    trail = lienthong(
        tmp_path, "audit", "trail", birth_id, "--data-dir", str(directory.parent), "--json"
    )
    assert trail.returncode == 0, trail.stdout + trail.stderr
    exchanges = [json.loads(line) for line in trail.stdout.splitlines()]
    assert [e["at"] for e in exchanges] == sorted(e["at"] for e in exchanges)
    assert (exchanges[0]["server"], exchanges[0]["method"]) == (
        "gateway",
        "SubmitBirthDeclaration",
    )
    agency_calls = [(e["server"], e["method"]) for e in exchanges if e["server"] != "gateway"]
    assert agency_calls == BIRTH_AGENCY_CALLS
    assert all(e["code"] == "OK" for e in exchanges)

    # One byte of one record of the population log: a digit of a digest.
    population = directory / "population.jsonl"
    lines = population.read_bytes().split(b"\n")
    number = next(i for i, line in enumerate(lines, start=1) if b'"method":"RegisterBirth"' in line)
    line = lines[number - 1]
    at = line.index(b'"request_sha256":"') + len(b'"request_sha256":"')
    lines[number - 1] = line[:at] + (b"1" if line[at : at + 1] == b"0" else b"0") + line[at + 1 :]
    population.write_bytes(b"\n".join(lines))

    tampered = lienthong(tmp_path, "audit", "verify", str(directory))
    assert tampered.returncode == 1, tampered.stdout
    assert f"{population}:{number}: altered" in tampered.stdout, tampered.stdout
