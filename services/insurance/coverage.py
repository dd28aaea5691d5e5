"""Whether a health insurance card covers a day of care (a hospital's lookup
by personal ID number, with the chip-based citizen ID card in place of the
insurance card: about 13,000 facilities, 163.98 million uses in 2024).

A card covers the days from valid_from to valid_to, both included. A card
ended by its holder's death (EndCoverage: ended_on is the date of death)
still covers the day of death, as the care given that day (often what the
person died under) is claimed on it, and nothing after. When a day fails
more than one test, the answer names what happened first: a card that had
expired before its holder died is expired, not ended.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import Enum


class NotCovered(Enum):
    NO_CARD = "NO_CARD"
    CARD_NOT_YET_VALID = "CARD_NOT_YET_VALID"
    CARD_EXPIRED = "CARD_EXPIRED"
    CARD_ENDED = "CARD_ENDED"


@dataclass(frozen=True)
class Validity:
    valid_from: dt.date
    valid_to: dt.date
    # The date of death that ended the card; None while it was not ended.
    ended_on: dt.date | None = None


def not_covered(card: Validity | None, day: dt.date) -> NotCovered | None:
    """Why `card` does not cover `day`; None when it does."""
    if card is None:
        return NotCovered.NO_CARD
    if day < card.valid_from:
        return NotCovered.CARD_NOT_YET_VALID
    if card.ended_on is not None and card.ended_on <= card.valid_to and day > card.ended_on:
        return NotCovered.CARD_ENDED
    if day > card.valid_to:
        return NotCovered.CARD_EXPIRED
    return None
