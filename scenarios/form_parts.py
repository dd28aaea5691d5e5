"""Small pieces shared by the birth and death plans: picking people, phone
numbers, times of day, how the result is delivered, how a payee is paid."""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence

from lienthong.common.v1.common_pb2 import (
    PAYMENT_METHOD_BANK_TRANSFER,
    PAYMENT_METHOD_CASH,
    PAYMENT_METHOD_POST,
)
from lienthong.gateway.v1 import gateway_pb2 as gw
from lienthong.insurance.v1 import insurance_pb2 as ins
from lienthong.population.v1 import population_pb2 as pop

# Decree 63/2024 art. 7 lets the declarant choose; the portal and VNeID are
# the point of the reform, so most choose online (an assumption).
POST_DELIVERY_SHARE = 0.15
# Payees of the funeral allowance: bank transfer, post, cash (an assumption).
PAYMENT_SHARES = (
    (PAYMENT_METHOD_BANK_TRANSFER, 0.6),
    (PAYMENT_METHOD_POST, 0.1),
    (PAYMENT_METHOD_CASH, 0.3),
)
BANKS = ("Vietcombank", "VietinBank", "BIDV", "Agribank", "Techcombank", "MB", "VPBank", "ACB")
MOBILE_PREFIXES = ("03", "05", "07", "08", "09")


def weighted_sample(
    rng: random.Random, candidates: Sequence[int], weights: Sequence[float], count: int
) -> list[int]:
    """`count` distinct candidates, each drawn with probability proportional to
    its weight (Efraimidis and Spirakis: the largest u ** (1 / w))."""
    keyed = (
        (rng.random() ** (1.0 / weight), -position)
        for position, weight in enumerate(weights)
        if weight > 0
    )
    return [candidates[-negated] for _, negated in heapq.nlargest(count, keyed)]


def phone(rng: random.Random) -> str:
    return rng.choice(MOBILE_PREFIXES) + f"{int(rng.random() * 10**8):08d}"


def time_of_day(rng: random.Random) -> str:
    minutes = int(rng.random() * 24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def delivery(rng: random.Random) -> gw.DeliveryMethod.ValueType:
    return (
        gw.DELIVERY_METHOD_POST if rng.random() < POST_DELIVERY_SHARE else gw.DELIVERY_METHOD_ONLINE
    )


def declarant(rng: random.Random, person: pop.Citizen, relationship: str) -> gw.Declarant:
    return gw.Declarant(
        personal_id_number=person.personal_id_number,
        full_name=person.full_name,
        relationship=relationship,
        phone=phone(rng),
    )


def payee(rng: random.Random, person: pop.Citizen) -> ins.Payee:
    roll = rng.random()
    method = PAYMENT_SHARES[-1][0]
    for candidate, share in PAYMENT_SHARES:
        roll -= share
        if roll < 0:
            method = candidate
            break
    if method != PAYMENT_METHOD_BANK_TRANSFER:
        return ins.Payee(
            full_name=person.full_name,
            personal_id_number=person.personal_id_number,
            payment_method=method,
        )
    return ins.Payee(
        full_name=person.full_name,
        personal_id_number=person.personal_id_number,
        payment_method=method,
        bank_account=f"{int(rng.random() * 10**13):013d}",
        bank_name=rng.choice(BANKS),
    )
