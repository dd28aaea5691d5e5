"""`lienthong up --store postgres` watches its own PostgreSQL like its other
children: SIGKILLed, it is started again on its port and data, and the
registries answer from it again without being restarted themselves."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import grpc
import pytest

from common.channels import TlsSettings, sync_channel
from lienthong.population.v1 import population_pb2 as population_pb
from lienthong.population.v1 import population_pb2_grpc as population_grpc
from tests.cli.running import fixed_ports_stay_taken, read_until, spawn
from tests.processes import alive


def registry_answer(address: str, tls: TlsSettings) -> grpc.StatusCode:
    """The population registry's answer about someone it has never heard of:
    NOT_FOUND is an answer from its database; UNAVAILABLE is its database away."""
    with sync_channel(address, tls=tls) as channel:
        try:
            population_grpc.PopulationRegistryServiceStub(channel).GetCitizen(
                population_pb.GetCitizenRequest(personal_id_number="001099000001"), timeout=10
            )
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_up_starts_its_postgresql_again_and_the_registries_answer_from_it(
    tmp_path: Path, postgres_binaries: object
) -> None:
    if fixed_ports_stay_taken():
        pytest.skip("a default registry port is taken (a stack is running here)")
    data_dir = tmp_path / "up"
    up = spawn(
        ["up", "--no-gateway", "--store", "postgres", "--data-dir", str(data_dir)],
        cwd=tmp_path,
        env=os.environ | {"LIENTHONG_DATA_DIR": str(tmp_path / "elsewhere")},
    )
    seen: list[str] = []
    try:
        read_until(up, "Press Ctrl-C to stop", seen)
        state = json.loads((data_dir / "stack.json").read_text(encoding="utf-8"))
        tls = TlsSettings.for_identity(Path(state["pki_dir"]), "lienthong-cli")
        population = state["agencies"]["population"]
        assert registry_answer(population, tls) == grpc.StatusCode.NOT_FOUND
        registries = dict(state["processes"])

        postmaster = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGKILL)

        output = read_until(up, "postgres is serving again", seen)
        assert "postgres stopped unexpectedly; starting it again in 1 s" in output
        # The registries' pools drop their dead connections and make new ones:
        # answers from the database again, within a deadline.
        deadline = time.monotonic() + 30
        answer = registry_answer(population, tls)
        while answer != grpc.StatusCode.NOT_FOUND and time.monotonic() < deadline:
            time.sleep(0.2)
            answer = registry_answer(population, tls)
        assert answer == grpc.StatusCode.NOT_FOUND, output
        # Nobody else was restarted for it.
        assert all(alive(pid) for pid in registries.values())
        assert json.loads((data_dir / "stack.json").read_text())["processes"] == registries
        up.send_signal(signal.SIGTERM)
        rest, _ = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert up.returncode == 0, "".join(seen) + rest
