"""The agencies of the interconnection, described once.

Every place that needs to know the agencies — their settings, the gateway's
clients, the stack that starts them, the state file, seeding, the replay and
the CLI — is built from this table. A new agency is a new row here, a new
contract in proto/ and a new service module; nothing else names the set.

An agency's *name* is its one name everywhere: in step plans, in logs, in
`--agency NAME=HOST:PORT`, as the key of the state file and as the stem of
its settings (`LIENTHONG_<NAME>_HOST/_PORT/_DB` for the registry itself,
`LIENTHONG_<NAME>_ADDRESS` for its callers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lienthong.health.v1 import health_pb2, health_pb2_grpc
from lienthong.insurance.v1 import insurance_pb2, insurance_pb2_grpc
from lienthong.population.v1 import population_pb2, population_pb2_grpc

__all__ = [
    "AGENCIES",
    "AGENCY_NAMES",
    "GATEWAY_PORT",
    "Agency",
    "UnknownAgencyError",
    "agency",
    "default_address",
    "parse_agency_addresses",
]

# The gateway is not an agency (it belongs to no ministry) but shares the
# port range: 50050, the agencies from 50051 on.
GATEWAY_PORT = 50050


@dataclass(frozen=True)
class Agency:
    name: str
    # In words, for people: who runs the registry in Vietnam.
    title: str
    # The contract's full gRPC service name (what reflection and grpcurl show).
    service: str
    # The generated stub class: works on a sync and an aio channel alike.
    stub: Callable[[Any], Any]
    default_port: int
    # How our implementation's process starts: `python -m <module>`.
    module: str
    # Short, for a picture of the parties (the web console).
    label: str = ""

    @property
    def env_prefix(self) -> str:
        """LIENTHONG_POPULATION_: the registry reads HOST, PORT, DB under it."""
        return f"LIENTHONG_{self.name.upper()}_"

    @property
    def address_variable(self) -> str:
        """Where a caller (the gateway) is told the agency's host:port."""
        return self.env_prefix + "ADDRESS"


def _service(file: Any, name: str) -> str:
    return str(file.DESCRIPTOR.services_by_name[name].full_name)


AGENCIES: tuple[Agency, ...] = (
    Agency(
        name="population",
        title="population registry (Ministry of Public Security: civil status and residence)",
        service=_service(population_pb2, "PopulationRegistryService"),
        stub=population_pb2_grpc.PopulationRegistryServiceStub,
        default_port=50051,
        module="services.population",
        label="Population registry (Ministry of Public Security)",
    ),
    Agency(
        name="insurance",
        title="social insurance registry (Vietnam Social Security, VSS)",
        service=_service(insurance_pb2, "InsuranceRegistryService"),
        stub=insurance_pb2_grpc.InsuranceRegistryServiceStub,
        default_port=50052,
        module="services.insurance",
        label="Social security (VSS)",
    ),
    Agency(
        name="health",
        title="hospital registry (Ministry of Health: birth certificates, death notices)",
        service=_service(health_pb2, "HealthRegistryService"),
        stub=health_pb2_grpc.HealthRegistryServiceStub,
        default_port=50053,
        module="services.health",
        label="Hospital (health)",
    ),
)

AGENCY_NAMES: tuple[str, ...] = tuple(a.name for a in AGENCIES)
_BY_NAME = {a.name: a for a in AGENCIES}


class UnknownAgencyError(ValueError):
    """A name that is no agency of the table; the message names the choices."""


def agency(name: str) -> Agency:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownAgencyError(
            f"no agency named {name[:40]!r} (the agencies: {', '.join(AGENCY_NAMES)})"
        ) from None


def default_address(name: str, host: str = "127.0.0.1") -> str:
    return f"{host}:{agency(name).default_port}"


def parse_agency_addresses(values: list[str] | tuple[str, ...]) -> dict[str, str]:
    """`["population=10.0.0.5:50051", ...]` → {"population": "10.0.0.5:50051"}.

    Raises ValueError with a sentence for a person: an unknown agency, a
    missing `=`, an address without a port, or one agency given twice."""
    addresses: dict[str, str] = {}
    for value in values:
        name, sep, address = value.partition("=")
        name, address = name.strip(), address.strip()
        if not sep or not name or not address:
            raise ValueError(f"expected NAME=HOST:PORT, got {value[:100]!r}")
        agency(name)  # raises UnknownAgencyError (a ValueError) with the choices
        host, colon, port = address.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{name}: expected HOST:PORT, got {address[:100]!r}")
        if name in addresses:
            raise ValueError(f"{name} is given twice")
        addresses[name] = address
    return addresses
