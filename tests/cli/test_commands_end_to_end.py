"""The commands as a user runs them: real `lienthong` processes.

`up` on the default ports (skipped when something already listens there) and
`demo` through Kafka, the registries and the gateway.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cli.stack import Stack
from common.channels import TlsSettings
from common.processes import listen_port
from lienthong.population.v1 import population_pb2 as population_pb
from lienthong.population.v1 import population_pb2_grpc as population_grpc
from tests.cli.running import LIENTHONG, fixed_ports_stay_taken, run
from tests.processes import alive


def cli_env(tmp_path: Path) -> dict[str, str]:
    # A data dir of its own: no stack.json of a developer's running stack is found.
    return os.environ | {"LIENTHONG_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "160"}


def remove_kept_stack(output: str) -> None:
    """The demo keeps its fresh stack's directory (for its message logs) and names it."""
    kept = re.search(r"Logs kept in (\S+)", output)
    if kept is not None:
        shutil.rmtree(kept.group(1), ignore_errors=True)


def test_up_registries_serves_until_sigterm_then_leaves_nothing(tmp_path: Path) -> None:
    if fixed_ports_stay_taken():
        pytest.skip("a default registry port is taken (a stack is running here)")
    data_dir = tmp_path / "up"
    up = subprocess.Popen(
        [*LIENTHONG, "up", "--no-gateway", "--seed-demo", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(tmp_path),
        cwd=tmp_path,
    )
    try:
        assert up.stdout is not None
        seen = []
        # `up` says it is ready once every component answered its health check.
        for line in up.stdout:
            seen.append(line)
            if "Press Ctrl-C to stop" in line:
                break
        output = "".join(seen)
        assert up.poll() is None, output
        # The stack is mutual TLS: grpcurl is shown under the CLI's identity.
        pki = data_dir / "pki"
        assert (
            f"grpcurl -cacert {pki / 'ca.crt'} -cert {pki / 'lienthong-cli.crt'} "
            f"-key {pki / 'lienthong-cli.key'} 127.0.0.1:50051 list"
        ) in output.replace("\n", "")
        assert "-plaintext" not in output
        assert "Seeded the example population" in output
        state = json.loads((data_dir / "stack.json").read_text(encoding="utf-8"))
        assert state["agencies"]["population"] == "127.0.0.1:50051"
        # Each child serves its metrics on its default metrics port (common/config.py).
        assert state["metrics"] == {
            "population": "127.0.0.1:9651",
            "insurance": "127.0.0.1:9652",
            "health": "127.0.0.1:9653",
        }
        assert "curl -s http://127.0.0.1:9651/metrics" in output
        with urllib.request.urlopen("http://127.0.0.1:9651/metrics", timeout=10) as answer:
            scraped = answer.read().decode("utf-8")
        # The seeding `up --seed-demo` just did, counted by the population registry.
        assert re.search(r'lienthong_rpc_calls_total\{[^}]*method="SeedPopulation"', scraped)
        assert state["pki_dir"] == str(pki.resolve())
        assert state["insecure"] is False
        children = list(state["processes"].values())
        assert len(children) == 3 and all(alive(pid) for pid in children)
        # A registry that dies is started again on its port (with backoff).
        crashed = state["processes"]["population"]
        os.kill(crashed, signal.SIGKILL)
        lines = []
        for line in up.stdout:
            lines.append(line)
            if "population is serving again" in line:
                break
        output += "".join(lines)
        assert "population stopped unexpectedly; starting it again in 1 s" in output
        # `up` rewrites its state file with the new process id just after saying so.
        deadline = time.monotonic() + 30
        while state["processes"]["population"] == crashed and time.monotonic() < deadline:
            time.sleep(0.05)
            state = json.loads((data_dir / "stack.json").read_text(encoding="utf-8"))
        assert state["processes"]["population"] != crashed
        assert alive(state["processes"]["population"])
        # The compose probe, under an identity of the stack's CA (a plain-text
        # probe could not connect).
        identity = TlsSettings.for_identity(pki, "lienthong-cli").as_env()
        answer = subprocess.run(
            [sys.executable, "-m", "common.healthcheck", "127.0.0.1:50051"],
            env=os.environ | identity,
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert answer.returncode == 0, answer.stdout + answer.stderr
        children = list(state["processes"].values())
        up.send_signal(signal.SIGTERM)
        rest, _ = up.communicate(timeout=30)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert up.returncode == 0, output + rest
    assert "Stopped." in rest
    assert not (data_dir / "stack.json").exists()
    assert not any(alive(pid) for pid in children)


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.timeout(200)
def test_demo_completes_a_birth_and_a_death(tmp_path: Path) -> None:
    if not (Path(__file__).resolve().parents[2] / "gateway" / "__main__.py").exists():
        pytest.skip("python -m gateway does not exist yet")
    demo = run(
        ["demo", "--broker", "embedded", "--new-stack"],
        cwd=tmp_path,
        env=cli_env(tmp_path),
        timeout=180,
    )
    output = demo.stdout + demo.stderr
    remove_kept_stack(output)
    assert demo.returncode == 0, output
    assert "Traceback" not in output
    # The demo tells the user the child's whole number (logs would mask it).
    assert re.search(r"the child's personal ID number is \d{12}\.", output), output
    assert re.search(r"Funeral allowance \d{1,3}(,\d{3})+ VND", output), output
    # A hospital looks the newborn up by her new ID number: covered by the
    # card just issued, at the initial facility chosen in the declaration.
    number = re.search(r"the child's personal ID number is (\d{12})\.", output)
    assert number is not None
    assert re.search(
        rf"A hospital checks the child's coverage by ID number {number[1]}: covered on "
        r"\d{4}-\d{2}-\d{2}: card TE101\d{10}, group TE .*, benefit level 1, "
        r"initial facility 01003, valid from",
        output,
    ), output
    assert "Both dossiers completed." in output
    # Under mutual TLS with the policy on: the hospital's valid certificate
    # may not register a birth at the population registry.
    assert (
        "PERMISSION_DENIED: hospital may not call "
        "lienthong.population.v1.PopulationRegistryService/RegisterBirth"
    ) in output.replace("\n", " ").replace("  ", " ")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_demo_runs_on_a_population_registry_plugged_in_from_elsewhere(tmp_path: Path) -> None:
    # A population registry the demo's stack does not own: started apart, in
    # a directory of its own, as another team's implementation would run.
    # One CA for both (LIENTHONG_PKI_DIR): the interconnection's parties
    # trust the same authority, whoever runs them.
    shared = tmp_path / "pki"
    with Stack(
        broker=None, registries=("population",), data_dir=tmp_path / "theirs", pki_dir=shared
    ) as theirs:
        address = theirs.address("population")
        demo = run(
            ["demo", "--broker", "embedded", "--agency", f"population={address}"],
            cwd=tmp_path,
            env=cli_env(tmp_path) | {"LIENTHONG_PKI_DIR": str(shared)},
            timeout=200,
        )
        output = demo.stdout + demo.stderr
        remove_kept_stack(output)
        assert demo.returncode == 0, output
        assert "Both dossiers completed." in output
        assert f"population at {address}" in output
        child = re.search(r"the child's personal ID number is (\d{12})\.", output)
        assert child is not None, output
        # The birth was registered in *their* registry, asked through the contract.
        with theirs.sync_channel("population") as channel:
            citizen = population_grpc.PopulationRegistryServiceStub(channel).GetCitizen(
                population_pb.GetCitizenRequest(personal_id_number=child.group(1)), timeout=10
            )
        assert citizen.citizen.personal_id_number == child.group(1)


def test_a_plugged_in_agency_that_does_not_answer_is_named(tmp_path: Path) -> None:
    nobody = f"127.0.0.1:{listen_port()}"
    demo = run(
        ["demo", "--agency", f"insurance={nobody}"],
        cwd=tmp_path,
        env=cli_env(tmp_path),
        timeout=120,
    )
    output = demo.stdout + demo.stderr
    assert demo.returncode == 1, output
    assert f"insurance at {nobody} (plugged in with --agency) does not answer" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("police=127.0.0.1:1", "no agency named 'police' (the agencies: population"),
        ("population", "expected NAME=HOST:PORT"),
        ("population=127.0.0.1", "population: expected HOST:PORT"),
    ],
)
def test_a_bad_agency_option_is_refused_with_the_reason(
    tmp_path: Path, value: str, problem: str
) -> None:
    demo = run(
        ["demo", "--agency", value],
        cwd=tmp_path,
        env=cli_env(tmp_path),
        timeout=60,
    )
    assert demo.returncode == 2, demo.stdout + demo.stderr
    assert problem in demo.stderr


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.timeout(200)
def test_demo_insecure_runs_in_plain_text_and_says_so(tmp_path: Path) -> None:
    demo = run(
        ["demo", "--broker", "embedded", "--new-stack", "--insecure"],
        cwd=tmp_path,
        env=cli_env(tmp_path),
        timeout=180,
    )
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output
    assert "Both dossiers completed." in output
    assert "Access policy: off (plain text, --insecure)." in output
    assert "INSECURE" in output
    assert "access policy is not enforced" in output
