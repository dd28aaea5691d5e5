"""The health insurance card of a child under 6 (thẻ BHYT trẻ em dưới 6 tuổi).

Law on Health Insurance art. 12(3): the State budget pays for children under
6, so the card is group TE at benefit level 1 (100 %, no ceiling; Decision
1351/QD-BHXH). Law 46/2014/QH13 art. 1(10), amending the Law on Health
Insurance: the card is valid until the child is 72 months old, and a child who
reaches 72 months before the school year starts stays covered until 30
September of that year.

Decree 146/2018/ND-CP art. 13(2) words it differently for a child born after
30 September (valid to the end of the month of the 6th birthday); this module
follows the Law as the domain brief states it: the day before the birthday.
"""

from __future__ import annotations

import datetime as dt

from common.dates import add_years, age_in_years

BENEFICIARY_GROUP = "TE"  # trẻ em: a child under 6
BENEFIT_LEVEL = 1
COVERED_UNTIL_AGE = 6  # 72 months
# The school year starts in September; a child who turns 6 by then is covered
# until the end of that month instead of losing the card over the summer.
SCHOOL_YEAR_CUTOFF = (9, 30)


def is_under_six(date_of_birth: dt.date, on: dt.date) -> bool:
    return age_in_years(date_of_birth, on) < COVERED_UNTIL_AGE


def is_entitled(date_of_birth: dt.date, on: dt.date) -> bool:
    """Whether a card may be issued on `on`: while the card would still be
    valid, so a child who turned 6 on or before 30 September is still entitled
    to one, valid to that day, if it is asked for between the birthday and then
    (Law 46/2014/QH13 art. 1(10))."""
    return date_of_birth <= on <= valid_to(date_of_birth)


def sixth_birthday(date_of_birth: dt.date) -> dt.date:
    """72 months after birth; a child born on 29 February turns 6 on 1 March."""
    return add_years(date_of_birth, COVERED_UNTIL_AGE)


def valid_to(date_of_birth: dt.date) -> dt.date:
    """The last day the card is valid."""
    turns_six = sixth_birthday(date_of_birth)
    cutoff = dt.date(turns_six.year, *SCHOOL_YEAR_CUTOFF)
    if turns_six <= cutoff:
        return cutoff
    return turns_six - dt.timedelta(days=1)


def card_code(province_code: str, social_insurance_number: str) -> str:
    """GG B PP NNNNNNNNNN, the 15-character code of Decision 1351/QD-BHXH: group,
    benefit level, the last two digits of the province code, the 10-digit number."""
    return f"{BENEFICIARY_GROUP}{BENEFIT_LEVEL}{province_code[-2:]}{social_insurance_number}"
