"""How a gateway decides its group membership: static under its instance id
where the broker honours it, as the launcher says (LIENTHONG_STATIC_MEMBERSHIP)
or, when it does not know, as a probe at start finds."""

from __future__ import annotations

import pytest

from gateway import app
from gateway.config import GatewayConfig


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The probe's calls; it answers that the broker honours static membership."""
    calls: list[str] = []

    async def probe(bootstrap: str, topic: str) -> bool:
        calls.append(topic)
        return True

    monkeypatch.setattr(app, "static_membership_honoured", probe)
    return calls


def config(monkeypatch: pytest.MonkeyPatch, static: str | None) -> GatewayConfig:
    monkeypatch.setenv("LIENTHONG_GATEWAY_INSTANCE_ID", "gateway-a")
    if static is None:
        monkeypatch.delenv("LIENTHONG_STATIC_MEMBERSHIP", raising=False)
    else:
        monkeypatch.setenv("LIENTHONG_STATIC_MEMBERSHIP", static)
    return GatewayConfig.from_env()


async def test_a_broker_known_to_honour_it_gets_static_membership_without_a_probe(
    monkeypatch: pytest.MonkeyPatch, probes: list[str]
) -> None:
    joined = await app.membership(config(monkeypatch, "yes"), "t.deadletter")
    assert joined.instance_id == "gateway-a"
    assert probes == []


async def test_a_broker_known_not_to_honour_it_gets_dynamic_membership_without_a_probe(
    monkeypatch: pytest.MonkeyPatch, probes: list[str]
) -> None:
    joined = await app.membership(config(monkeypatch, "NO"), "t.deadletter")
    assert joined.instance_id is None
    assert probes == []


async def test_an_unknown_broker_is_probed_once(
    monkeypatch: pytest.MonkeyPatch, probes: list[str]
) -> None:
    joined = await app.membership(config(monkeypatch, None), "t.deadletter")
    assert joined.instance_id == "gateway-a"
    assert probes == ["t.deadletter"]


def test_a_word_it_does_not_know_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit, match="LIENTHONG_STATIC_MEMBERSHIP must be one of"):
        config(monkeypatch, "maybe")


def test_coordination_is_the_brokers_groups_unless_the_store_is_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LIENTHONG_GROUP_COORDINATION", raising=False)
    assert config(monkeypatch, "yes").coordination == "kafka"
    monkeypatch.setenv("LIENTHONG_GROUP_COORDINATION", "store")
    assert config(monkeypatch, "no").coordination == "store"
    monkeypatch.setenv("LIENTHONG_GROUP_COORDINATION", "zookeeper")
    with pytest.raises(SystemExit, match="LIENTHONG_GROUP_COORDINATION must be one of"):
        config(monkeypatch, "no")
