"""The forms' example people: a fresh family seeded per call, as `lienthong demo` does.

Each call draws a new run token (cli/demo_data.py: unique identifiers), seeds
its households, hospital records and insurance record through the
registries' seed RPCs (cli/seeding.py), and hands back a birth and a death
declaration that complete unchanged, in the protobuf JSON mapping with the
proto field names (what the page's inputs are named after).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from typing import Any, Protocol

from google.protobuf import json_format

from cli.demo_data import TOKEN_LIMIT, DemoPopulation, demo_population
from cli.seeding import seed
from common.channels import TlsSettings
from common.clock import SystemClock, vietnam_today


class People(Protocol):
    def fresh(self) -> dict[str, Any]:
        """{"birth": {"label", "declaration"}, "death": {...}}; raises
        grpc.RpcError if a registry refuses the seeding or is down."""


def describe(people: DemoPopulation) -> dict[str, Any]:
    names = {c.personal_id_number: c.full_name for c in people.citizens}
    birth, death = people.birth, people.death
    hospital = birth.place_of_birth.split(",")[0]
    mother = names.get(birth.mother_id_number, birth.declarant.full_name)
    deceased = names.get(death.deceased_id_number, "a pensioner")
    return {
        "birth": {
            "label": f"A new baby girl, {birth.child_full_name}, at {hospital}, mother {mother}",
            "declaration": _as_json(birth),
        },
        "death": {
            "label": f"{deceased}, pensioner, died at {death.place_of_death.split(',')[0]}; "
            f"declared by his son {death.declarant.full_name}",
            "declaration": _as_json(death),
        },
    }


def _as_json(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


class SeededPeople:
    """Seeds each family into the stack's registries (agency → address)."""

    def __init__(self, agencies: Mapping[str, str], tls: TlsSettings | None) -> None:
        self.agencies = dict(agencies)
        self.tls = tls

    def fresh(self) -> dict[str, Any]:
        # Yesterday in Vietnam, as the demo: within every time limit, never a future day.
        yesterday = vietnam_today(SystemClock()) - dt.timedelta(days=1)
        people = demo_population(
            secrets.randbelow(TOKEN_LIMIT), born_on=yesterday, died_on=yesterday
        )
        seed(self.agencies, people, tls=self.tls)
        return describe(people)
