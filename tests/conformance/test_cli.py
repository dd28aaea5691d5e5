"""`lienthong conform` end to end: a subprocess against a population registry
process exits 0 and writes JUnit XML with a testcase per rule; against a
broken registry it exits 1 naming the rule; a bad command line exits 2."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from conformance.contracts import CONTRACTS
from services.population.app import build
from tests.conformance.test_population import NotFoundAsPrecondition
from tests.conformance.variants import with_servicer
from tests.services.test_population_process import RegistryProcess

REPO = Path(__file__).resolve().parents[2]
CLI_SECONDS = 120


def conform(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", "conform", *args]


def cases_in(junit: Path) -> dict[str, ET.Element]:
    return {case.attrib["name"]: case for case in ET.parse(junit).iter("testcase")}


def test_a_registry_process_passes_and_junit_names_every_rule(tmp_path: Path) -> None:
    registry = RegistryProcess(tmp_path / "population.sqlite3", tmp_path / "population.log")
    junit = tmp_path / "reports" / "population.xml"
    try:
        registry.wait_until_serving()
        target = f"127.0.0.1:{registry.port}"
        done = subprocess.run(
            conform(
                "population",
                "--target",
                target,
                "--junit",
                str(junit),
                # The registry's CA and the kit's identity (the process is mutual TLS).
                *("--ca", str(tmp_path / "pki" / "ca.crt")),
                *("--cert", str(tmp_path / "pki" / "conformance.crt")),
                *("--key", str(tmp_path / "pki" / "conformance.key")),
            ),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=CLI_SECONDS,
            check=False,
        )
    finally:
        registry.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    cases = cases_in(junit)
    assert set(cases) == {rule.name for rule in CONTRACTS["population"].rules}
    assert not [name for name, case in cases.items() if case.find("failure") is not None]
    rules = len(CONTRACTS["population"].rules)
    assert f"population at {target}: {rules} passed, 0 failed" in done.stdout
    assert "population.register_birth.id_number_century_sex_digit" in done.stdout


async def test_a_broken_registry_exits_1_with_the_rule_and_its_evidence(
    start: Any, tmp_path: Path
) -> None:
    registry = await start(with_servicer(build, NotFoundAsPrecondition))
    junit = tmp_path / "population.xml"
    # The server runs on this event loop: wait for the CLI without blocking it.
    process = await asyncio.create_subprocess_exec(
        *conform(
            "population",
            "--target",
            registry.address,
            "-k",
            "get_citizen",
            "--junit",
            str(junit),
            # The in-process registry is plain text: the CLI must be told, and warns.
            "--insecure",
        ),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), CLI_SECONDS)
    assert process.returncode == 1, output.decode()
    cases = cases_in(junit)
    assert set(cases) == {
        "population.get_citizen.happy_path",
        "population.get_citizen.not_found",
        "population.get_citizen.field_violations",
    }
    failure = cases["population.get_citizen.not_found"].find("failure")
    assert failure is not None
    assert "got FAILED_PRECONDITION reason CITIZEN_NOT_FOUND" in failure.attrib["message"]
    assert cases["population.get_citizen.happy_path"].find("failure") is None
    assert "2 passed, 1 failed" in output.decode()
    assert "INSECURE" in output.decode()


def test_a_pattern_that_selects_nothing_is_a_bad_command_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["conform", "population", "-k", "no_such_rule"]) == 2
    assert "no rule of population has 'no_such_rule'" in capsys.readouterr().err


def test_an_unknown_contract_is_a_bad_command_line() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["conform", "registry-of-nothing"])
    assert exited.value.code == 2


def test_list_prints_every_rule_with_its_description(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conform", "population", "--list"]) == 0
    listed = capsys.readouterr().out
    for rule in CONTRACTS["population"].rules:
        assert rule.name in listed
