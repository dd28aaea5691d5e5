"""The console's HTTP API with stand-ins for the gateway, the people and the
switchboard: every route, every error status, garbage bodies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from starlette.testclient import TestClient

from cli.demo_data import EXAMPLE
from cli.web.app import build_app
from cli.web.live import LiveState
from cli.web.people import describe
from cli.web.switchboard import NoSwitches, StackSwitchboard
from lienthong.gateway.v1 import gateway_pb2 as gw

AGENCIES = ("health", "population", "insurance")


class RpcFailure(grpc.RpcError, grpc.Call):
    """A failed call as grpc raises it, with google.rpc details."""

    def __init__(self, code: grpc.StatusCode, message: str, violations: Any = ()) -> None:
        self._code, self._message = code, message
        status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message)
        if violations:
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                    for f, d in violations
                ]
            )
            status.details.add().Pack(bad)
        self._metadata = ((rpc_status.GRPC_DETAILS_METADATA_KEY, status.SerializeToString()),)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._message

    def trailing_metadata(self) -> Any:
        return self._metadata

    def initial_metadata(self) -> Any:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float:
        return 0.0

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Any) -> bool:
        return False


def completed(dossier_id: str) -> gw.Dossier:
    dossier = gw.Dossier(
        dossier_id=dossier_id,
        kind=gw.DOSSIER_KIND_BIRTH,
        state=gw.DOSSIER_STATE_COMPLETED,
        birth_result=gw.BirthResult(personal_id_number="001326000001"),
    )
    step = dossier.timeline.add(
        name="register_birth", agency="population", state=gw.STEP_STATE_SUCCEEDED, attempts=1
    )
    step.started_at.FromMilliseconds(1000)
    step.finished_at.FromMilliseconds(1012)
    step.outcome = "registered"
    return dossier


class FakeGateway:
    def __init__(self) -> None:
        self.submitted: list[tuple[str, str]] = []
        self.fail_submit: Exception | None = None
        self.dossiers = {"d-1": completed("d-1")}

    async def get(self, dossier_id: str) -> gw.Dossier:
        if dossier_id == "down":
            raise RpcFailure(grpc.StatusCode.UNAVAILABLE, "connection refused")
        if dossier_id not in self.dossiers:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, f"no dossier {dossier_id}")
        return self.dossiers[dossier_id]

    async def watch(self, dossier_id: str) -> AsyncIterator[gw.Dossier]:
        running = gw.Dossier(dossier_id=dossier_id, state=gw.DOSSIER_STATE_IN_PROGRESS)
        yield running
        yield completed(dossier_id)

    async def submit(self, kind: str, declaration: Message, idempotency_key: str) -> str:
        if self.fail_submit is not None:
            raise self.fail_submit
        self.submitted.append((kind, idempotency_key))
        return "d-1"

    async def close(self) -> None:
        return None


class FakePeople:
    def fresh(self) -> dict[str, Any]:
        return describe(EXAMPLE)


class FakeStack:
    def __init__(self) -> None:
        self.running = {"health": True, "population": True, "insurance": True}
        self.latency: dict[str, float] = {}

    def replica_names(self, agency_name: str) -> list[str]:
        return [agency_name]

    def stop_component(self, name: str) -> None:
        self.running[name] = False

    def start_component(self, name: str) -> None:
        self.running[name] = True

    def is_running(self, name: str) -> bool:
        return self.running[name]

    def inject_latency(self, name: str, milliseconds: float) -> None:
        self.latency[name] = milliseconds


class NeverTimer:
    def __init__(self, seconds: float, action: Any) -> None:
        self.seconds = seconds

    def cancel(self) -> None:
        return None


def make_client(*, replay: bool = False, external: tuple[str, ...] = ()) -> Iterator[Any]:
    gateway = FakeGateway()
    stack = FakeStack()
    switchboard = (
        NoSwitches(AGENCIES)
        if replay
        else StackSwitchboard(stack, AGENCIES, external=external, timer=NeverTimer)
    )
    app = build_app(
        live=LiveState(AGENCIES),
        gateway=gateway,
        people=FakePeople(),
        switchboard=switchboard,
        mode="replay" if replay else "up",
        title="lienthong — test",
        gateway_address="127.0.0.1:1",
        agency_addresses={name: "127.0.0.1:2" for name in AGENCIES},
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        client.gateway = gateway
        client.stack = stack
        client.switchboard = switchboard
        yield client


@pytest.fixture
def client() -> Iterator[Any]:
    yield from make_client()


def test_the_page_and_the_overview(client: Any) -> None:
    assert client.get("/").status_code == 200
    overview = client.get("/api/overview").json()
    assert overview["mode"] == "up" and overview["switches"] is True
    assert [p["name"] for p in overview["parties"]] == ["declarant", "gateway", *AGENCIES]
    health = overview["parties"][2]
    assert health["label"] == "Hospital (health)" and health["status"] == "up"
    assert overview["recent"] == [] and overview["replay"] is None


def test_a_dossier_in_the_words_of_lienthong_status(client: Any) -> None:
    detail = client.get("/api/dossiers/d-1").json()
    assert detail["state"] == "COMPLETED" and detail["ended"] is True
    assert detail["timeline"] == [
        {
            "step": "register_birth",
            "agency": "population",
            "state": "SUCCEEDED",
            "elapsed_ms": 12,
            "attempts": 1,
            "outcome": "registered",
        }
    ]
    assert detail["results"] == [
        "Birth registered; the child's personal ID number is 001326000001."
    ]


@pytest.mark.parametrize(
    ("path", "status"),
    [("/api/dossiers/nope", 404), ("/api/dossiers/down", 503), ("/api/dossiers/" + "x" * 65, 400)],
)
def test_dossier_errors_are_statuses_with_a_sentence(client: Any, path: str, status: int) -> None:
    answer = client.get(path)
    assert answer.status_code == status
    assert len(answer.json()["message"]) <= 300


def test_a_dossier_stream_ends_with_the_dossier_ended() -> None:
    for client in make_client():
        client.gateway.dossiers["d-2"] = gw.Dossier(
            dossier_id="d-2", state=gw.DOSSIER_STATE_RECEIVED
        )
        with client.stream("GET", "/api/dossiers/d-2/stream") as response:
            events = [line for line in response.iter_lines() if line.startswith("event: ")]
        assert events == ["event: dossier"] * 3 + ["event: end"]


def test_people_gives_two_declarations(client: Any) -> None:
    people = client.get("/api/people").json()
    assert people["birth"]["declaration"]["child_full_name"] == "Trần Ngọc Anh"
    assert "Lê Văn Hùng" in people["death"]["label"]


def test_a_submission_with_a_key_from_the_content(client: Any) -> None:
    body = {"declaration": describe(EXAMPLE)["birth"]["declaration"]}
    answer = client.post("/api/declarations/birth", json=body)
    assert answer.status_code == 200 and answer.json() == {
        "dossier_id": "d-1",
        "state": "COMPLETED",
    }
    client.post("/api/declarations/birth", json=body)
    keys = [key for _, key in client.gateway.submitted]
    assert keys[0] == keys[1] and keys[0].startswith("birth-")
    client.post("/api/declarations/birth", json=body | {"idempotency_key": "mine"})
    assert client.gateway.submitted[-1] == ("birth", "mine")


def test_a_rule_of_the_contract_is_named_by_field(client: Any) -> None:
    declaration = describe(EXAMPLE)["birth"]["declaration"] | {"mother_id_number": "12AB"}
    answer = client.post("/api/declarations/birth", json={"declaration": declaration})
    assert answer.status_code == 400
    assert [v["field"] for v in answer.json()["violations"]] == ["mother_id_number"]
    assert client.gateway.submitted == []


def test_the_gateways_field_violations_are_named_inside_the_declaration(client: Any) -> None:
    client.gateway.fail_submit = RpcFailure(
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid request",
        [("declaration.declarant.personal_id_number", "no such citizen")],
    )
    body = {"declaration": describe(EXAMPLE)["birth"]["declaration"]}
    answer = client.post("/api/declarations/birth", json=body)
    assert answer.status_code == 400
    assert answer.json()["violations"] == [
        {"field": "declarant.personal_id_number", "message": "no such citizen"}
    ]
    client.gateway.fail_submit = RpcFailure(grpc.StatusCode.UNAVAILABLE, "no gateway")
    assert client.post("/api/declarations/birth", json=body).status_code == 503


HUGE = "x" * 2_000_000


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b"\xff\xfe",
        json.dumps({"declaration": {"no_such_field": 1}}).encode(),
        json.dumps({"declaration": {"child_full_name": "y" * 500_000}}).encode(),
        json.dumps({"declaration": {"child_sex": "Z" * 10_000}}).encode(),
        json.dumps({"declaration": [], "other": 1}).encode(),
        json.dumps({"declaration": "text"}).encode(),
        json.dumps({"declaration": {}, "idempotency_key": 5}).encode(),
        json.dumps({"decl": {}}).encode(),
        HUGE.encode(),
        b"{" * 100_000,
    ],
)
def test_garbage_bodies_get_a_400_sentence_quoting_little(client: Any, body: bytes) -> None:
    answer = client.post("/api/declarations/birth", content=body)
    assert answer.status_code == 400, answer.text
    text = answer.text
    assert "Traceback" not in text
    assert "x" * 101 not in text and "y" * 101 not in text and "Z" * 101 not in text
    assert answer.json()["message"]


def test_an_unknown_kind_or_route_is_404(client: Any) -> None:
    assert client.post("/api/declarations/marriage", json={}).status_code == 404
    assert client.get("/api/nothing").status_code == 404


def test_switches_take_down_slow_and_restore(client: Any) -> None:
    down = client.post("/api/agencies/insurance/outage", json={"seconds": 60})
    assert down.status_code == 202
    assert down.json()["status"] == "down" and down.json()["fault_until"].endswith("Z")
    assert client.stack.running["insurance"] is False
    back = client.post("/api/agencies/insurance/restore")
    assert back.status_code == 202 and back.json()["status"] == "up"
    assert client.stack.running["insurance"] is True
    slow = client.post("/api/agencies/health/latency", json={"milliseconds": 800, "seconds": 5})
    assert slow.json()["status"] == "slow" and slow.json()["latency_ms"] == 800
    assert client.stack.latency["health"] == 800


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/api/agencies/nobody/outage", {"seconds": 5}, 404, None),
        ("/api/agencies/health/explode", {}, 404, None),
        ("/api/agencies/health/outage", {"seconds": 0}, 400, "seconds"),
        ("/api/agencies/health/outage", {"seconds": 601}, 400, "seconds"),
        ("/api/agencies/health/outage", {"seconds": "ten"}, 400, "seconds"),
        ("/api/agencies/health/latency", {"seconds": 5}, 400, "milliseconds"),
        (
            "/api/agencies/health/latency",
            {"milliseconds": 30_001, "seconds": 5},
            400,
            "milliseconds",
        ),
    ],
)
def test_switch_errors(client: Any, path: str, body: Any, status: int, field: str | None) -> None:
    answer = client.post(path, json=body)
    assert answer.status_code == status
    if field is not None:
        assert [v["field"] for v in answer.json()["violations"]] == [field]


def test_switches_are_refused_during_a_replay_and_for_an_agency_run_elsewhere() -> None:
    for client in make_client(replay=True):
        assert client.get("/api/overview").json()["switches"] is False
        answer = client.post("/api/agencies/health/outage", json={"seconds": 5})
        assert answer.status_code == 409 and "replay" in answer.json()["message"]
        # The page still sees what the scenario does to an agency.
        client.switchboard.observe("health", "down")
        client.switchboard.observe("gateway-2", "down")  # not an agency: not shown
        parties = {p["name"]: p for p in client.get("/api/overview").json()["parties"]}
        assert parties["health"]["status"] == "down"
        client.switchboard.observe("health", "slow", 800)
        parties = {p["name"]: p for p in client.get("/api/overview").json()["parties"]}
        assert (parties["health"]["status"], parties["health"]["latency_ms"]) == ("slow", 800)
    for client in make_client(external=("population",)):
        parties = {p["name"]: p for p in client.get("/api/overview").json()["parties"]}
        assert parties["population"]["status"] == "external"
        answer = client.post("/api/agencies/population/outage", json={"seconds": 5})
        assert answer.status_code == 409 and "--agency" in answer.json()["message"]
