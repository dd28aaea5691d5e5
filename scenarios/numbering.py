"""Identifiers for synthetic people and documents, unique within a generation.

Personal ID number (Law on Identification 2023, Decree 70/2024):
PPP G YY NNNNNN, the serial unique within the PPP G YY prefix. Seeded serials
stay below 900000: the demo population (cli/demo_data.py) uses 9NNNNN, and
the population registry numbers newborns from 000001 up, skipping taken ones.

Social insurance number: 10 digits, one per person for life; like the
insurance registry's own numbers (services/insurance), the province's two
digits and an eight-digit serial.
"""

from __future__ import annotations

import datetime as dt
import random

from common.identifiers import PersonalIdNumber

SEEDED_SERIAL_LIMIT = 899_999
SOCIAL_INSURANCE_SERIALS = 10**8


class IdNumbers:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.taken: set[str] = set()

    def new(self, province_code: str, born: dt.date, *, female: bool) -> str:
        prefix = PersonalIdNumber.prefix_for(province_code, born, female=female)
        while True:
            number = f"{prefix}{int(self.rng.random() * SEEDED_SERIAL_LIMIT) + 1:06d}"
            if number not in self.taken:
                self.taken.add(number)
                return number


class SocialInsuranceNumbers:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.taken: set[str] = set()

    def new(self, province_code: str) -> str:
        while True:
            serial = int(self.rng.random() * (SOCIAL_INSURANCE_SERIALS - 1)) + 1
            number = f"{province_code[-2:]}{serial:08d}"
            if number not in self.taken:
                self.taken.add(number)
                return number


class DocumentNumbers:
    """Birth certificate (GCS) and death notice (GBT) numbers.

    PREFIX-facility-year-serial, a shape the health registry never issues
    itself (it counts PREFIX-facility-serial), so seeded and issued numbers
    cannot collide; the serial is random so that two plans differ.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.taken: set[str] = set()

    def new(self, prefix: str, facility_code: str, year: int) -> str:
        while True:
            number = f"{prefix}-{facility_code}-{year}-{int(self.rng.random() * 10**7):07d}"
            if number not in self.taken:
                self.taken.add(number)
                return number
