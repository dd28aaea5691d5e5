"""The rules of each form, one function per form: Form 01 (birth) and Form 02
(death), applied the same way whether the form arrives in a submission or, in
part, in a supplement (the API checks the dossier's form with the supplement
merged in, as the saga will see it).

The contract (protovalidate, in the interceptor) already fixed the shape of
each field; these are the rules it cannot express: a date is a real calendar
day and, since it records the past, not in the future (beyond the configured
clock tolerance); a province code is in the province table; a personal ID
number starts with a province code (Law on Identification 2023, Decree
70/2024). Every bad field is named at once, as `<field>.<name>`.

What is *missing* is not an error here: the saga asks the declarant for it
(procedures.missing_fields, Decree 63/2024/ND-CP: 7 working days to
supplement). Codes another agency owns (the initial health-care facility) are
checked by that agency at its step, which refuses with its reason.
"""

from __future__ import annotations

import datetime as dt

from common.dates import past_day
from common.errors import FieldViolation, InvalidArgument
from common.identifiers import parse_personal_id
from common.provinces import is_province
from lienthong.gateway.v1 import gateway_pb2 as pb


class _Violations:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.found: list[FieldViolation] = []

    def add(self, name: str, description: str) -> None:
        self.found.append(FieldViolation(f"{self.prefix}.{name}", description))

    def past_day(self, name: str, value: str, latest: dt.date) -> None:
        if not value:
            return  # missing: the saga asks for it
        try:
            past_day(name, value, latest)
        except InvalidArgument as error:
            for violation in error.violations:
                self.add(violation.field, violation.description)

    def personal_id(self, name: str, value: str) -> None:
        if not value:
            return
        try:
            parse_personal_id(value)
        except ValueError as error:
            self.add(name, str(error))

    def province(self, name: str, value: str) -> None:
        if value and not is_province(value):
            self.add(name, f"{value} is not a province code")

    def raise_any(self) -> None:
        if self.found:
            raise InvalidArgument(self.found)


def check_birth_declaration(form: pb.BirthDeclaration, *, field: str, latest: dt.date) -> None:
    """Form 01. `field` names the form in the request (`declaration`,
    `birth_declaration`); `latest` is the latest day a date may name."""
    found = _Violations(field)
    if form.HasField("declarant"):
        found.personal_id("declarant.personal_id_number", form.declarant.personal_id_number)
    found.past_day("child_date_of_birth", form.child_date_of_birth, latest)
    found.personal_id("mother_id_number", form.mother_id_number)
    found.personal_id("father_id_number", form.father_id_number)
    # The province where the birth is registered: the first digits of the
    # child's personal ID number (Law on Identification 2023, Decree 70/2024).
    found.province("registration_province_code", form.registration_province_code)
    found.raise_any()


def check_death_declaration(form: pb.DeathDeclaration, *, field: str, latest: dt.date) -> None:
    """Form 02. `field` names the form in the request (`declaration`,
    `death_declaration`); `latest` is the latest day a date may name."""
    found = _Violations(field)
    if form.HasField("declarant"):
        found.personal_id("declarant.personal_id_number", form.declarant.personal_id_number)
    found.personal_id("deceased_id_number", form.deceased_id_number)
    found.past_day("date_of_death", form.date_of_death, latest)
    if form.HasField("payee"):
        found.personal_id("payee.personal_id_number", form.payee.personal_id_number)
    found.raise_any()
