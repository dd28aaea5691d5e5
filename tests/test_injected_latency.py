"""Latency a load test injects into a running registry."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from cli.stack import Stack
from common import injected_latency
from common.injected_latency import InjectedLatency, write_injected_latency
from lienthong.health.v1 import health_pb2 as hl
from lienthong.health.v1 import health_pb2_grpc as hl_grpc


def test_the_file_sets_the_latency_and_nothing_else_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(injected_latency, "REFRESH_SECONDS", 0.0)
    path = tmp_path / "health.injected-latency"
    latency = InjectedLatency(path)
    assert latency.seconds() == 0.0  # no file yet
    write_injected_latency(path, 250)
    assert latency.seconds() == 0.25
    path.write_text("not a number")
    assert latency.seconds() == 0.0
    write_injected_latency(path, 0)
    assert latency.seconds() == 0.0
    assert InjectedLatency(None).seconds() == 0.0


def test_a_running_registry_answers_late_while_latency_is_injected() -> None:
    with (
        Stack(broker=None, registries=("health",)) as stack,
        stack.sync_channel("health") as channel,
    ):
        stub = hl_grpc.HealthRegistryServiceStub(channel)

        def timed_call() -> float:
            began = time.perf_counter()
            with pytest.raises(grpc.RpcError) as raised:
                stub.GetFacility(hl.GetFacilityRequest(code="99999"), timeout=10)
            assert raised.value.code() == grpc.StatusCode.NOT_FOUND
            return time.perf_counter() - began

        timed_call()  # connect first
        stack.inject_latency("health", 400)
        # The registry re-reads the file within REFRESH_SECONDS: calls
        # until then may still be on time.
        deadline = time.monotonic() + 10
        while timed_call() < 0.4:
            assert time.monotonic() < deadline, "the injected latency never showed"
