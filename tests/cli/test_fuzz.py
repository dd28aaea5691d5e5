"""The fuzz in the suite: every RPC of the four services gets arbitrary and
malformed requests (cli/fuzz_inputs.py, from the descriptors) over real gRPC;
no answer may be UNKNOWN, INTERNAL or RESOURCE_EXHAUSTED, long or quoting a
value whole; a refused call writes nothing; every service stays SERVING.

Bounded for `make test` (FUZZ_EXAMPLES inputs per RPC, about 20 s in all on
two cores); `lienthong fuzz` (or `make fuzz`) is the long run.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from rich.console import Console

from cli.demo_data import EXAMPLE
from cli.fuzz import Answer, check_one, judge, quoted_too_long, run_fuzz
from cli.fuzz_inputs import Input, Rpc, all_rpcs, inputs
from cli.fuzz_targets import GATEWAY, FuzzTargets, fuzz_targets
from lienthong.gateway.v1 import gateway_pb2 as gw
from lienthong.gateway.v1 import gateway_pb2_grpc as gw_grpc

FUZZ_EXAMPLES = int(os.environ.get("LIENTHONG_FUZZ_EXAMPLES", "50"))
RPCS = all_rpcs()


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTargets]:
    with fuzz_targets(tmp_path_factory.mktemp("fuzz")) as started:
        yield started
        assert "Traceback" not in started.server_log()


def test_the_fuzz_covers_the_24_rpcs_of_the_four_services() -> None:
    assert len(RPCS) == 24
    assert {r.service for r in RPCS} == {
        "lienthong.health.v1.HealthRegistryService",
        "lienthong.population.v1.PopulationRegistryService",
        "lienthong.insurance.v1.InsuranceRegistryService",
        "lienthong.gateway.v1.GatewayService",
    }
    assert sum(r.client_streaming for r in RPCS) == 3
    assert [r.full_name for r in RPCS if r.server_streaming] == [
        "lienthong.gateway.v1.GatewayService.WatchDossier"
    ]


@pytest.mark.parametrize("rpc", RPCS, ids=[r.full_name.rsplit(".", 2)[-1] for r in RPCS])
def test_no_input_gets_an_answer_it_should_not(targets: FuzzTargets, rpc: Rpc) -> None:
    with grpc.insecure_channel(targets.addresses[rpc.service]) as channel:

        @settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(inputs(rpc, targets.pool))
        def one(sent: Input) -> None:
            _answer, problems = check_one(targets, channel, rpc, sent)
            assert problems == []

        one()
    assert targets.serving(rpc.service)


def _unknown_field(number: int, size: int) -> bytes:
    """A length-delimited field no message of the contract has."""

    def varint(value: int) -> bytes:
        out = bytearray()
        while value > 0x7F:
            out.append(value & 0x7F | 0x80)
            value >>= 7
        out.append(value)
        return bytes(out)

    return varint(number << 3 | 2) + varint(size) + b"u" * size


def test_a_declaration_carrying_a_megabyte_the_contract_does_not_know_is_taken_without_it(
    targets: FuzzTargets,
) -> None:
    # Found by the fuzz: the gateway stored the declaration, then Kafka
    # refused the 1 MB record: INTERNAL, and a dossier that never moves.
    declaration = gw.BirthDeclaration()
    declaration.CopyFrom(EXAMPLE.birth)
    declaration.MergeFromString(_unknown_field(5000, 1_100_000))
    with grpc.insecure_channel(targets.addresses[GATEWAY]) as channel:
        stub = gw_grpc.GatewayServiceStub(channel)
        submitted = stub.SubmitBirthDeclaration(
            gw.SubmitBirthDeclarationRequest(
                idempotency_key="unknown-megabyte", declaration=declaration
            ),
            timeout=30,
        )
        dossier = stub.GetDossier(
            gw.GetDossierRequest(dossier_id=submitted.dossier_id), timeout=30
        ).dossier
    assert dossier.birth_declaration == EXAMPLE.birth
    assert len(dossier.SerializeToString()) < 10_000


# The oracle itself, on answers made up here.
RPC = RPCS[0]


def test_the_oracle_refuses_the_codes_a_client_input_must_never_get() -> None:
    for code in ("UNKNOWN", "INTERNAL", "RESOURCE_EXHAUSTED"):
        assert judge(RPC, Input(b"", ()), Answer(code, "x")) != []
    assert judge(RPC, Input(b"", ()), Answer("INVALID_ARGUMENT", "x")) == []
    assert judge(RPC, Input(b"", ()), Answer("INVALID_ARGUMENT", "x" * 301)) != []


def test_the_oracle_finds_a_value_quoted_beyond_about_a_hundred_characters() -> None:
    value = "".join(chr(0x4E00 + i) for i in range(5000))
    assert quoted_too_long(f"bad: {value[1000:1100]}… (5000 characters)", [value]) is None
    assert quoted_too_long(f"bad: {value[1000:1110]}", [value]) is not None
    assert quoted_too_long(f"bad: {value}", [value]) is not None


def test_lienthong_fuzz_prints_codes_per_rpc(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, width=200)
    code = run_fuzz(console, inputs_per_rpc=5, only="GetCitizen", seed=1, keep=tmp_path)
    printed = out.getvalue()
    assert code == 0, printed
    assert "lienthong.population.v1.PopulationRegistryService.GetCitizen" in printed
    assert "5 inputs" in printed
    assert "UNKNOWN, INTERNAL or RESOURCE_EXHAUSTED: 0" in printed
