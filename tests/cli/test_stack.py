"""The stack supervisor with the three registries alone (no Kafka, no gateway):
start, health, kill and restart one, stop, and no process left behind."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from brokers import BrokerKind, RunningBroker
from cli.probe import check
from cli.stack import REGISTRIES, Stack, StackError
from lienthong.common.v1.common_pb2 import SEX_FEMALE
from lienthong.population.v1 import population_pb2 as population_pb
from lienthong.population.v1 import population_pb2_grpc as population_grpc
from tests.processes import alive


def test_registries_start_serve_restart_and_stop_without_leftovers() -> None:
    stack = Stack(broker=None)
    with stack:
        assert set(stack.addresses) == set(REGISTRIES)
        for name in REGISTRIES:
            assert check(stack.address(name), tls=stack.tls())
            assert stack.log_file(name).is_file()
        pids = {name: stack.pid(name) for name in REGISTRIES}
        data_dir = stack.data_dir

        population = pids["population"]
        assert population is not None
        stack.kill("population")
        assert not alive(population)
        assert not check(stack.address("population"), timeout=0.2, tls=stack.tls())
        stack.start_component("population")
        assert check(stack.address("population"), tls=stack.tls())
        restarted = stack.pid("population")
        assert restarted is not None and restarted != population
        pids["population"] = restarted
    assert all(pid is not None and not alive(pid) for pid in pids.values())
    # A temporary data directory goes with the stack.
    assert not data_dir.exists()


def test_a_component_that_crashes_is_reported_with_its_log(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("", encoding="utf-8")
    stack = Stack(
        broker=None,
        data_dir=tmp_path / "data",
        # A database under a regular file: the hospital registry cannot open it.
        env={"LIENTHONG_HEALTH_DB": str(blocker / "health.sqlite3")},
    )
    with pytest.raises(StackError) as raised:
        stack.start()
    message = str(raised.value)
    assert "health exited with code" in message
    assert str(stack.data_dir / "health.log") in message
    # What was started before the failure was stopped.
    assert all(not c.running() for c in stack.components.values())
    # A data directory given by the caller is kept, logs and all.
    assert (tmp_path / "data" / "health.log").is_file()


def test_unknown_component_is_named() -> None:
    with Stack(broker=None, registries=("health",)) as stack, pytest.raises(StackError) as raised:
        stack.kill("gateway")
    assert "no component named 'gateway'" in str(raised.value)


@pytest.mark.parametrize(
    ("kind", "static", "expected"),
    [
        (
            BrokerKind.EMBEDDED,
            False,
            {
                "LIENTHONG_STATIC_MEMBERSHIP": "no",
                "LIENTHONG_KAFKA_FETCH_MAX_WAIT_MS": "30",
                # Tansu keeps no restarted member's place: leases in the store.
                "LIENTHONG_GROUP_COORDINATION": "store",
            },
        ),
        (
            BrokerKind.APACHE,
            True,
            {"LIENTHONG_STATIC_MEMBERSHIP": "yes", "LIENTHONG_GROUP_COORDINATION": "kafka"},
        ),
        (
            BrokerKind.EXTERNAL,
            None,
            {"LIENTHONG_STATIC_MEMBERSHIP": "probe", "LIENTHONG_GROUP_COORDINATION": "kafka"},
        ),
    ],
)
def test_the_stack_tells_its_gateways_what_their_broker_does(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: BrokerKind,
    static: bool | None,
    expected: dict[str, str],
) -> None:
    for name in (
        "LIENTHONG_KAFKA_FETCH_MAX_WAIT_MS",
        "LIENTHONG_GROUP_REBALANCE_TIMEOUT_SECONDS",
        "LIENTHONG_GROUP_COORDINATION",
    ):
        monkeypatch.delenv(name, raising=False)  # the stack copies its own environment
    stack = Stack(broker=kind.value, data_dir=tmp_path)
    stack.broker = RunningBroker(
        kind=kind,
        bootstrap_servers="127.0.0.1:9",
        supports_idempotence=kind is not BrokerKind.EMBEDDED,
        static_membership=static,
        # Only Tansu needs a fetch window of its own (brokers/embedded.py).
        fetch_max_wait_ms=30 if kind is BrokerKind.EMBEDDED else None,
    )
    env = stack._gateway_component("gateway").env
    for name, value in expected.items():
        assert env[name] == value
    # The gateway's own defaults stand.
    if kind is not BrokerKind.EMBEDDED:
        assert "LIENTHONG_KAFKA_FETCH_MAX_WAIT_MS" not in env
    assert "LIENTHONG_GROUP_REBALANCE_TIMEOUT_SECONDS" not in env


def test_a_fetch_window_set_by_the_caller_wins_over_the_brokers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIENTHONG_KAFKA_FETCH_MAX_WAIT_MS", "200")
    stack = Stack(broker=BrokerKind.EMBEDDED.value, data_dir=tmp_path)
    stack.broker = RunningBroker(
        kind=BrokerKind.EMBEDDED,
        bootstrap_servers="127.0.0.1:9",
        supports_idempotence=False,
        fetch_max_wait_ms=30,
    )
    assert stack._gateway_component("gateway").env["LIENTHONG_KAFKA_FETCH_MAX_WAIT_MS"] == "200"


def test_the_stack_is_mutual_tls_and_refuses_the_hospital_a_birth_registration() -> None:
    """The issue's done-when, on real processes: each registry serves its
    own identity from the stack's CA, and the hospital's valid certificate
    does not let it register a birth."""
    with Stack(broker=None, registries=("population",)) as stack:
        # No certificate: no connection at all.
        assert not check(stack.address("population"), timeout=2, tls=None)
        request = population_pb.RegisterBirthRequest(
            request_id="hospital-1",
            birth_certificate_number="GCS-01001-HOSPITAL1",
            child=population_pb.ChildParticulars(
                full_name="Trần Thị Mai",
                sex=SEX_FEMALE,
                date_of_birth="2024-05-01",
                place_of_birth="Bệnh viện Phụ sản Hà Nội",
                ethnicity="Kinh",
                nationality="Việt Nam",
            ),
            mother_id_number="001190000001",
            registration_province_code="001",
        )
        with stack.sync_channel("population", "hospital") as channel:
            stub = population_grpc.PopulationRegistryServiceStub(channel)
            with pytest.raises(grpc.RpcError) as raised:
                stub.RegisterBirth(request, timeout=10)
        error = raised.value
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error.details() == (
            "hospital may not call lienthong.population.v1.PopulationRegistryService/RegisterBirth"
        )
        log = stack.log_file("population").read_text(encoding="utf-8")
        assert "ACCESS_DENIED" in log
        assert '"tls": "mutual"' in log or "tls=mutual" in log


def test_an_insecure_stack_serves_plain_text_and_its_children_say_so() -> None:
    with Stack(broker=None, registries=("health",), insecure=True) as stack:
        assert stack.tls() is None
        assert check(stack.address("health"), tls=None)
        assert not (stack.data_dir / "pki").exists()
        log = stack.log_file("health").read_text(encoding="utf-8")
        assert log.count("INSECURE: plain-text gRPC") == 1
