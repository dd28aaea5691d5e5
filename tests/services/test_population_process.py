"""`python -m services.population` as a real process: it reports SERVING on
the standard health check, lists itself through reflection, keeps what it
acknowledged when killed with SIGKILL, and exits 0 promptly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from common import channels
from common.channels import TlsSettings
from common.processes import free_port
from lienthong.common.v1.common_pb2 import SEX_FEMALE
from lienthong.population.v1 import population_pb2 as pb
from lienthong.population.v1 import population_pb2_grpc as pb_grpc
from services.population.app import SERVICE_NAME

REPO = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 30.0
GRACE_SECONDS = 1.0
# Retry a refused connection quickly while the process starts (the default
# backoff is a second or more).
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 200),
]
MOTHER = "001190000001"


class RegistryProcess:
    """One `python -m services.population` child, its channel and its log."""

    def __init__(self, database: Path | str, log: Path) -> None:
        self.port = free_port()
        self.log = log
        env = {
            **os.environ,
            "LIENTHONG_POPULATION_HOST": "127.0.0.1",
            "LIENTHONG_POPULATION_PORT": str(self.port),
            "LIENTHONG_POPULATION_DB": str(database),
            "LIENTHONG_GRACE_SECONDS": str(GRACE_SECONDS),
            # Its own identity, as `lienthong up` would give it: mutual TLS.
            **TlsSettings.for_identity(log.parent / "pki", "population").as_env(),
        }
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.population"],
                cwd=REPO,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        # The test identity, granted every method by the access policy.
        self.channel = channels.sync_channel(
            f"127.0.0.1:{self.port}",
            options=CHANNEL_OPTIONS,
            tls=TlsSettings.for_identity(log.parent / "pki", "conformance"),
        )
        self.stub: Any = pb_grpc.PopulationRegistryServiceStub(self.channel)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-3000:]

    def wait_until_serving(self) -> None:
        """Poll the standard health check until SERVING, the process dies, or
        the deadline passes. wait_for_ready makes each probe wait for the
        connection instead of failing at once, so there is no sleep here."""
        health: Any = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + STARTUP_SECONDS
        while (remaining := deadline - time.monotonic()) > 0:
            if self.process.poll() is not None:
                pytest.fail(
                    f"exited with {self.process.returncode} while starting:\n{self.output()}"
                )
            try:
                answer = health.Check(
                    health_pb2.HealthCheckRequest(service=SERVICE_NAME),
                    timeout=min(0.5, remaining),
                    wait_for_ready=True,
                )
            except grpc.RpcError as error:
                if error.code() not in (
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.StatusCode.UNAVAILABLE,
                ):
                    raise
                continue
            if answer.status == health_pb2.HealthCheckResponse.SERVING:
                return
        pytest.fail(f"not SERVING after {STARTUP_SECONDS} s:\n{self.output()}")

    def service_names(self) -> set[str]:
        reflection: Any = reflection_pb2_grpc.ServerReflectionStub(self.channel)
        answers = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        return {
            service.name for answer in answers for service in answer.list_services_response.service
        }

    def stop(self) -> None:
        self.channel.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Any]:
    started: list[RegistryProcess] = []

    def _launch(database: Path | str) -> RegistryProcess:
        registry = RegistryProcess(database, tmp_path / "registry.log")
        started.append(registry)
        registry.wait_until_serving()
        return registry

    yield _launch
    for registry in started:
        registry.stop()


def seed_mother(stub: Any) -> None:
    mother = pb.Citizen(
        personal_id_number=MOTHER,
        full_name="Nguyễn Thị Lan",
        sex=SEX_FEMALE,
        date_of_birth="1990-04-12",
        registration_province_code="001",
    )
    stub.SeedPopulation(iter([pb.SeedPopulationRequest(citizens=[mother])]), timeout=10)


def register_birth(stub: Any) -> pb.RegisterBirthResponse:
    response: pb.RegisterBirthResponse = stub.RegisterBirth(
        pb.RegisterBirthRequest(
            request_id="process-birth-1",
            birth_certificate_number="GCS-01001-0000001",
            child=pb.ChildParticulars(
                full_name="Trần Thị Mai",
                sex=SEX_FEMALE,
                date_of_birth="2024-05-01",
                place_of_birth="Hà Nội",
                ethnicity="Kinh",
                nationality="Việt Nam",
            ),
            mother_id_number=MOTHER,
            registration_province_code="001",
        ),
        timeout=10,
    )
    return response


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_process_serves_survives_sigkill_and_stops_on_sigterm(
    launch: Any, tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    database: Path | str = tmp_path / "population.sqlite3"
    if engine == "postgres":
        database = request.getfixturevalue("postgres_url")
    first = launch(database)
    assert SERVICE_NAME in first.service_names()
    assert SERVICE_NAME == "lienthong.population.v1.PopulationRegistryService"
    seed_mother(first.stub)
    child = register_birth(first.stub).citizen

    first.process.send_signal(signal.SIGKILL)
    assert first.process.wait(timeout=10) == -signal.SIGKILL

    second = launch(database)
    found = second.stub.GetCitizen(
        pb.GetCitizenRequest(personal_id_number=child.personal_id_number), timeout=10
    )
    assert found.citizen == child

    second.process.send_signal(signal.SIGTERM)
    # Drains for at most the grace period, then exits cleanly.
    assert second.process.wait(timeout=GRACE_SECONDS + 10) == 0, second.output()
    assert str(database) in second.output(), "it says which store it opened"


def _without_trust_settings(database: Path, port: int) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in (channels.TLS_CA, channels.TLS_CERT, channels.TLS_KEY, channels.INSECURE)
    }
    return env | {
        "LIENTHONG_POPULATION_HOST": "127.0.0.1",
        "LIENTHONG_POPULATION_PORT": str(port),
        "LIENTHONG_POPULATION_DB": str(database),
    }


def test_a_process_without_tls_settings_refuses_to_start(tmp_path: Path) -> None:
    port = free_port()
    started = subprocess.run(
        [sys.executable, "-m", "services.population"],
        check=False,
        cwd=REPO,
        env=_without_trust_settings(tmp_path / "population.sqlite3", port),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert "refusing to serve in plain text" in started.stderr
    assert "LIENTHONG_INSECURE=1" in started.stderr


def test_insecure_when_asked_serves_plain_text_and_says_so(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "population.log"
    env = _without_trust_settings(tmp_path / "population.sqlite3", port) | {channels.INSECURE: "1"}
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.population"],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""),
                timeout=STARTUP_SECONDS,
                wait_for_ready=True,
            )
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        text = log.read_text(encoding="utf-8")
        assert text.count("INSECURE: plain-text gRPC") == 1
        assert "NOT enforced" in text
    finally:
        process.terminate()
        process.wait(timeout=GRACE_SECONDS + 10)
