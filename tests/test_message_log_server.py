"""A registry's message log over real gRPC on loopback: one record per call,
what it says, and what it never copies (the personal data in the messages)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from common.message_log import ENV_DIR, MessageLog, Signer
from common.message_log_verify import Trust, verify_log
from common.observers import observers_for
from common.server import start_registry
from lienthong.population.v1 import population_pb2 as pop
from lienthong.population.v1 import population_pb2_grpc as pop_grpc
from services.population.app import build

SERVICE = "lienthong.population.v1.PopulationRegistryService"
PIN = "001190999999"


async def test_every_call_is_one_record_without_the_payload(tmp_path: Path) -> None:
    bindings, store = build(tmp_path / "population.sqlite3")
    logs = tmp_path / "messages"
    message_log = MessageLog(logs, "population", Signer.for_log_directory(logs, "population"))
    running = await start_registry(bindings, observers=[message_log])
    household = pop.Household(household_id="HK-LOG-1", address="1 Tràng Tiền", province_code="001")

    async def batches() -> AsyncIterator[pop.SeedPopulationRequest]:
        yield pop.SeedPopulationRequest(households=[household])

    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pop_grpc.PopulationRegistryServiceStub(channel)
            await stub.SeedPopulation(batches())
            await stub.GetHousehold(
                pop.GetHouseholdRequest(household_id="HK-LOG-1"),
                metadata=(("x-correlation-id", "corr-7"), ("x-dossier-id", "birth-77")),
            )
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.GetCitizen(pop.GetCitizenRequest(personal_id_number=PIN))
    finally:
        await running.stop(None)
        message_log.close()
        store.close()

    data = message_log.path.read_bytes()
    assert PIN.encode() not in data and "Tràng Tiền".encode() not in data
    records = [json.loads(line) for line in data.splitlines()]
    calls = [r for r in records if r["kind"] == "call"]
    assert [(r["method"], r["code"]) for r in calls] == [
        ("SeedPopulation", "OK"),
        ("GetHousehold", "OK"),
        ("GetCitizen", "NOT_FOUND"),
    ]
    _, got, refused = calls
    assert {r["service"] for r in calls} == {SERVICE}
    assert got["caller"] == "anonymous"  # a plain-text port proves no one
    assert (got["correlation_id"], got["dossier_id"]) == ("corr-7", "birth-77")
    assert got["request_sha256"] and got["response_sha256"]
    assert (refused["reason"], refused["response_sha256"]) == ("CITIZEN_NOT_FOUND", None)
    assert records[-1]["kind"] == "checkpoint"
    assert verify_log(message_log.path, Trust.for_directory(logs)).ok


def test_the_log_is_on_only_when_its_directory_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_DIR, raising=False)
    assert observers_for("population") == []
    monkeypatch.setenv(ENV_DIR, str(tmp_path))
    [observer] = observers_for("population")
    assert isinstance(observer, MessageLog)
    observer.close()
    assert (tmp_path / "population.jsonl").exists()


@pytest.mark.slow
def test_a_killed_registry_loses_no_record_and_its_restart_continues_the_chain(
    tmp_path: Path,
) -> None:
    """The stack gives every child its message log; a record is written before
    the answer leaves, so a SIGKILL right after the answer loses nothing."""
    from cli.stack import Stack  # noqa: PLC0415 - the stack's imports are heavy

    with Stack(broker=None, registries=("population",), data_dir=tmp_path) as stack:
        for attempt in range(2):
            with stack.sync_channel("population") as channel:
                stub = pop_grpc.PopulationRegistryServiceStub(channel)
                with pytest.raises(grpc.RpcError):
                    stub.GetCitizen(pop.GetCitizenRequest(personal_id_number=PIN), timeout=10)
            if attempt == 0:
                stack.kill("population")
                stack.start_component("population")
    log = stack.message_log_dir / "population.jsonl"
    records = [json.loads(line) for line in log.read_bytes().splitlines()]
    assert [r["kind"] for r in records] == ["start", "call", "start", "call", "checkpoint"]
    report = verify_log(log, Trust.for_directory(log.parent))
    assert report.ok, report.problems
    assert report.calls == 2
