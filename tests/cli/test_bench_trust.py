"""`lienthong bench --trust`: the two ways its stacks run, on real registry
processes (the bench itself takes minutes: its passes are not run here)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from cli.bench import TRUST_MODES
from cli.stack import Stack
from lienthong.population.v1 import population_pb2 as pop
from lienthong.population.v1 import population_pb2_grpc as pop_grpc


def _ask(channel: grpc.Channel) -> grpc.StatusCode:
    try:
        pop_grpc.PopulationRegistryServiceStub(channel).GetHousehold(
            pop.GetHouseholdRequest(household_id="HK-BENCH"), timeout=10
        )
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("mode", ["on", "off"])
def test_the_trust_layer_is_on_or_off_as_the_bench_says(tmp_path: Path, mode: str) -> None:
    chosen = TRUST_MODES[mode]
    with Stack(
        broker=None,
        registries=("population",),
        data_dir=tmp_path,
        insecure=chosen.insecure,
        env=chosen.env,
    ) as stack:
        with grpc.insecure_channel(stack.address("population")) as plain:
            plain_answer = _ask(plain)
        logs = list((tmp_path / "messages").glob("*.jsonl"))
    if mode == "on":
        # Mutual TLS: a plain-text client is not even heard; the server keeps its log.
        assert plain_answer == grpc.StatusCode.UNAVAILABLE
        assert [log.name for log in logs] == ["population.jsonl"]
    else:
        assert plain_answer == grpc.StatusCode.NOT_FOUND  # heard, answered, no such household
        assert logs == []  # and no message log written
