"""Stored rows as contract messages. NULL (none) travels as the empty string."""

from __future__ import annotations

from common.database import Row
from lienthong.population.v1 import population_pb2 as pb


def to_citizen(row: Row) -> pb.Citizen:
    return pb.Citizen(
        personal_id_number=row["personal_id_number"],
        full_name=row["full_name"],
        sex=row["sex"],
        date_of_birth=row["date_of_birth"],
        place_of_birth=row["place_of_birth"],
        ethnicity=row["ethnicity"],
        nationality=row["nationality"],
        mother_id_number=row["mother_id_number"],
        father_id_number=row["father_id_number"],
        birth_certificate_number=row["birth_certificate_number"],
        registration_province_code=row["registration_province_code"],
        household_id=row["household_id"] or "",
        date_of_death=row["date_of_death"] or "",
    )


def to_household(row: Row) -> pb.Household:
    return pb.Household(
        household_id=row["household_id"],
        address=row["address"],
        province_code=row["province_code"],
        head_id_number=row["head_id_number"],
    )
