"""The agency table (common/agencies.py): what every part is built from."""

from __future__ import annotations

import importlib.util

import pytest

from common.agencies import AGENCIES, UnknownAgencyError, agency, parse_agency_addresses
from common.config import DEFAULT_PORTS, RegistryConfig
from gateway.config import GatewayConfig


def test_each_agency_has_a_process_a_contract_and_a_port_of_its_own() -> None:
    assert [a.name for a in AGENCIES] == ["population", "insurance", "health"]
    ports = [a.default_port for a in AGENCIES]
    assert len(set(ports)) == len(ports) and 50050 not in ports
    for row in AGENCIES:
        assert importlib.util.find_spec(f"{row.module}.__main__") is not None, row.module
        assert row.service == f"lienthong.{row.name}.v1.{row.stub.__name__.removesuffix('Stub')}"
    assert DEFAULT_PORTS == {
        "gateway": 50050,
        "population": 50051,
        "insurance": 50052,
        "health": 50053,
    }


def test_settings_are_read_under_each_agencys_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIENTHONG_INSURANCE_PORT", "6000")
    monkeypatch.setenv("LIENTHONG_HEALTH_ADDRESS", "hospital.example:7000")
    assert RegistryConfig.for_agency("insurance").port == 6000
    assert RegistryConfig.for_agency("population").port == 50051
    addresses = GatewayConfig.from_env().agency_addresses
    assert addresses == {
        "population": "127.0.0.1:50051",
        "insurance": "127.0.0.1:50052",
        "health": "hospital.example:7000",
    }


def test_agency_addresses_from_the_command_line() -> None:
    assert parse_agency_addresses(["population=10.0.0.5:50051", "health=[::1]:9"]) == {
        "population": "10.0.0.5:50051",
        "health": "[::1]:9",
    }


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        (["police=h:1"], "no agency named 'police' (the agencies: population, insurance, health)"),
        (["population"], "expected NAME=HOST:PORT, got 'population'"),
        (["population=host"], "population: expected HOST:PORT, got 'host'"),
        (["population=host:99999"], "population: expected HOST:PORT"),
        (["health=a:1", "health=b:2"], "health is given twice"),
        ([f"population=host:{'9' * 500}"], "population: expected HOST:PORT"),
    ],
)
def test_a_bad_agency_address_is_refused_with_the_reason(values: list[str], problem: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_agency_addresses(values)
    assert problem in str(refused.value)
    assert len(str(refused.value)) < 200  # a client's text is quoted short


def test_an_unknown_name_names_the_agencies() -> None:
    with pytest.raises(UnknownAgencyError, match="the agencies: population, insurance, health"):
        agency("hospital")
