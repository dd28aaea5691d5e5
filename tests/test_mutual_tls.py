"""Mutual TLS and the access policy at the wire: real TLS on loopback, the
population registry on a real SQLite file, identities from common/pki.py.

The oracles are written here, not read from the policy: which identity may
do what is the issue's own list (the gateway registers births, the hospital
looks coverage up and nothing else, the CLI seeds and reads)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from structlog.testing import capture_logs

import common.rpc
from common import channels, pki
from common.channels import TlsSettings
from common.rpc import CallRecord
from common.server import RunningRegistry, start_registry
from lienthong.common.v1.common_pb2 import SEX_FEMALE
from lienthong.population.v1 import population_pb2 as pb
from lienthong.population.v1 import population_pb2_grpc as pb_grpc
from services.population.app import build
from tests.grpc_errors import call_error

REGISTER_BIRTH = "lienthong.population.v1.PopulationRegistryService/RegisterBirth"
MOTHER = "001190000001"
HOUSEHOLD = pb.Household(household_id="HK-TLS", address="12 Phố Huế", province_code="001")
SEED = pb.SeedPopulationRequest(
    households=[HOUSEHOLD],
    citizens=[
        pb.Citizen(
            personal_id_number=MOTHER,
            full_name="Nguyễn Thị Lan",
            sex=SEX_FEMALE,
            date_of_birth="1990-04-12",
            place_of_birth="Hà Nội",
            ethnicity="Kinh",
            nationality="Việt Nam",
            registration_province_code="001",
            household_id="HK-TLS",
        )
    ],
)


def birth(request_id: str) -> pb.RegisterBirthRequest:
    return pb.RegisterBirthRequest(
        request_id=request_id,
        birth_certificate_number=f"GCS-01001-{request_id.upper()}",
        child=pb.ChildParticulars(
            full_name="Trần Thị Mai",
            sex=SEX_FEMALE,
            date_of_birth="2024-05-01",
            place_of_birth="Bệnh viện Phụ sản Hà Nội",
            ethnicity="Kinh",
            nationality="Việt Nam",
        ),
        mother_id_number=MOTHER,
        registration_province_code="001",
    )


def citizens(database: Path | str) -> int:
    with sqlite3.connect(database) as conn:
        count: int = conn.execute("SELECT count(*) FROM citizens").fetchone()[0]
    return count


class Recorder:
    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def observe(self, record: CallRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pki.issue_all(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def theirs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another CA, issuing the same names: a certificate that says "gateway"
    but that our CA never signed."""
    return pki.issue_all(tmp_path_factory.mktemp("other-pki"), ("gateway",))


@dataclass
class Secured:
    running: RunningRegistry
    database: Path
    recorder: Recorder

    @property
    def address(self) -> str:
        # The name the certificates carry (a SAN), as a client on this machine dials it.
        return f"localhost:{self.running.port}"


@pytest.fixture(autouse=True)
def capturable_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fresh structlog defaults, so capture_logs hears the interceptor (see test_wire.py)."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    monkeypatch.setattr(common.rpc, "log", structlog.get_logger("rpc"))
    yield
    structlog.configure(**saved)


@pytest.fixture
async def registry(ours: Path, tmp_path: Path) -> AsyncIterator[Secured]:
    database = tmp_path / "population.sqlite3"
    bindings, store = build(database)
    recorder = Recorder()
    # The bundled policy file: tls without an explicit policy loads it.
    running = await start_registry(
        bindings, tls=TlsSettings.for_identity(ours, "population"), observers=[recorder]
    )
    secured = Secured(running, database, recorder)

    async def batches() -> AsyncIterator[pb.SeedPopulationRequest]:
        yield SEED

    try:
        async with channels.channel(
            secured.address, tls=TlsSettings.for_identity(ours, "lienthong-cli")
        ) as channel:
            stub = pb_grpc.PopulationRegistryServiceStub(channel)
            await stub.SeedPopulation(batches(), timeout=5)
        yield secured
    finally:
        await running.stop(None)
        store.close()


def stub_as(ours: Path, identity: str, address: str) -> tuple[grpc.aio.Channel, Any]:
    channel = channels.channel(address, tls=TlsSettings.for_identity(ours, identity))
    return channel, pb_grpc.PopulationRegistryServiceStub(channel)


async def health_status(channel: grpc.aio.Channel) -> int:
    answer = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=5
    )
    return int(answer.status)


# --- who may connect ----------------------------------------------------------------


async def test_a_client_without_a_certificate_cannot_connect(ours: Path, registry: Secured) -> None:
    # It trusts our CA, so only the missing client certificate is wrong.
    credentials = grpc.ssl_channel_credentials(root_certificates=(ours / "ca.crt").read_bytes())
    async with grpc.aio.secure_channel(registry.address, credentials) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await health_status(channel)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    async with grpc.aio.insecure_channel(registry.address) as plain:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await health_status(plain)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_certificate_from_another_ca_cannot_connect(
    ours: Path, theirs: Path, registry: Secured
) -> None:
    # It trusts our CA (so the server's certificate is fine) but presents
    # a "gateway" certificate our CA never issued.
    forged = TlsSettings(ours / "ca.crt", theirs / "gateway.crt", theirs / "gateway.key")
    async with channels.channel(registry.address, tls=forged) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await pb_grpc.PopulationRegistryServiceStub(channel).RegisterBirth(
                birth("forged"), timeout=5
            )
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert citizens(registry.database) == 1


async def test_a_client_refuses_a_server_our_ca_did_not_issue(
    ours: Path, theirs: Path, tmp_path: Path
) -> None:
    bindings, store = build(tmp_path / "impostor.sqlite3")
    impostor = await start_registry(bindings, tls=TlsSettings.for_identity(theirs, "gateway"))
    try:
        channel, _ = stub_as(ours, "gateway", f"localhost:{impostor.port}")
        async with channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await health_status(channel)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await impostor.stop(None)
        store.close()


async def test_every_identity_may_probe_health(ours: Path, registry: Secured) -> None:
    for identity in ("hospital", "gateway", "lienthong-cli"):
        channel, _ = stub_as(ours, identity, registry.address)
        async with channel:
            assert await health_status(channel) == health_pb2.HealthCheckResponse.SERVING


# --- what each may call -------------------------------------------------------------


async def test_the_hospital_may_not_register_a_birth(ours: Path, registry: Secured) -> None:
    """A valid certificate, from the wrong agency: refused before the
    handler, named, logged, and nothing was written."""
    channel, stub = stub_as(ours, "hospital", registry.address)
    async with channel:
        with capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.RegisterBirth(birth("by-hospital"), timeout=5)
    error = call_error(raised.value)
    assert error.code == grpc.StatusCode.PERMISSION_DENIED
    assert error.reason == "ACCESS_DENIED"
    assert error.message == f"hospital may not call {REGISTER_BIRTH}"
    assert citizens(registry.database) == 1
    warnings = [line for line in logs if line["log_level"] == "warning"]
    assert len(warnings) == 1
    assert warnings[0]["reason"] == "ACCESS_DENIED"
    assert warnings[0]["caller"] == "hospital"
    assert "hospital" in warnings[0]["detail"]
    assert registry.recorder.records[-1].caller == "hospital"
    assert registry.recorder.records[-1].code == "PERMISSION_DENIED"


async def test_the_gateway_may_register_a_birth(ours: Path, registry: Secured) -> None:
    channel, stub = stub_as(ours, "gateway", registry.address)
    async with channel:
        answer = await stub.RegisterBirth(birth("by-gateway"), timeout=5)
    assert answer.citizen.mother_id_number == MOTHER
    assert citizens(registry.database) == 2
    assert registry.recorder.records[-1].caller == "gateway"


async def test_metadata_claiming_another_identity_changes_nothing(
    ours: Path, registry: Secured
) -> None:
    channel, stub = stub_as(ours, "hospital", registry.address)
    claims = (("x509_common_name", "gateway"), ("x-caller", "gateway"), ("identity", "gateway"))
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.RegisterBirth(birth("claimed"), metadata=claims, timeout=5)
    assert call_error(raised.value).message == f"hospital may not call {REGISTER_BIRTH}"
    assert citizens(registry.database) == 1


async def test_the_cli_may_read_and_seed_but_not_register(ours: Path, registry: Secured) -> None:
    channel, stub = stub_as(ours, "lienthong-cli", registry.address)
    async with channel:
        found = await stub.GetCitizen(pb.GetCitizenRequest(personal_id_number=MOTHER), timeout=5)
        assert found.citizen.full_name == "Nguyễn Thị Lan"
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.RegisterBirth(birth("by-cli"), timeout=5)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert citizens(registry.database) == 1


async def test_a_refused_stream_is_refused_before_its_first_message(
    ours: Path, registry: Secured
) -> None:
    """SeedPopulation is client streaming: the hospital may not seed."""
    extra = pb.Household(household_id="HK-HOSP", address="1 Giải Phóng", province_code="001")
    channel, stub = stub_as(ours, "hospital", registry.address)

    async def batches() -> AsyncIterator[pb.SeedPopulationRequest]:
        yield pb.SeedPopulationRequest(households=[extra])

    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.SeedPopulation(batches(), timeout=5)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with sqlite3.connect(registry.database) as conn:
        assert conn.execute("SELECT count(*) FROM households").fetchone()[0] == 1


# --- plain text only when asked -----------------------------------------------------


def test_a_server_process_without_settings_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (channels.TLS_CA, channels.TLS_CERT, channels.TLS_KEY, channels.INSECURE):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as refused:
        channels.server_tls("population")
    assert "refusing to serve in plain text" in str(refused.value)
    assert "LIENTHONG_INSECURE=1" in str(refused.value)


def test_half_the_settings_is_a_mistake_not_plain_text(
    monkeypatch: pytest.MonkeyPatch, ours: Path
) -> None:
    monkeypatch.setenv(channels.TLS_CA, str(ours / "ca.crt"))
    monkeypatch.delenv(channels.TLS_CERT, raising=False)
    monkeypatch.delenv(channels.TLS_KEY, raising=False)
    monkeypatch.setenv(channels.INSECURE, "1")
    with pytest.raises(SystemExit) as refused:
        channels.server_tls("population")
    assert "LIENTHONG_TLS_CERT" in str(refused.value)


def test_insecure_is_allowed_when_asked_and_said_loudly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (channels.TLS_CA, channels.TLS_CERT, channels.TLS_KEY):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(channels.INSECURE, "1")
    monkeypatch.setattr(channels, "log", structlog.get_logger("trust"))
    with capture_logs() as logs:
        assert channels.server_tls("population") is None
    loud: list[MutableMapping[str, Any]] = [line for line in logs if "INSECURE" in line["event"]]
    assert len(loud) == 1
    assert loud[0]["log_level"] == "warning"
    assert "NOT enforced" in loud[0]["event"]
