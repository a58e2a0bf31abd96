"""Age in whole years, judged one way for donors and patients (DOMAIN.md sections 3 and 6).

A donor's age limit (SSc-BM familial donor "18 to 65 years", inclusive on the collection date) and a patient's
(both trials "> 18 and < 70", strict, on the check date) are both read from the same birthday: the day a person
reaches an age. Someone born on 29 February reaches it on 1 March in common years (the later of the two candidate
days: a lower limit is never reached a day early). The upper limits agree with it: "< 70" holds until the day before the 70th birthday, "65 inclusive" until the day before the 66th, so a
patient or donor born on 29 February is still 69 (or 65) on 28 February of a common year, as the age shown says.
"""
from __future__ import annotations

from datetime import date, timedelta

__all__ = ["birthday", "completed_years", "earliest_birth"]


def birthday(date_of_birth: date, years: int) -> date:
    """The day a person born on `date_of_birth` reaches `years` (1 March in a common year for 29 February)."""
    try:
        return date_of_birth.replace(year=date_of_birth.year + years)
    except ValueError:  # 29 February in a common year
        return date(date_of_birth.year + years, 3, 1)


def completed_years(date_of_birth: date, on: date) -> int:
    """Whole years completed on `on`: the age a form shows and every age limit compares."""
    years = on.year - date_of_birth.year
    return years if on >= birthday(date_of_birth, years) else years - 1


def earliest_birth(on: date, years: int) -> date:
    """The earliest date of birth that gives at most `years` completed years on `on` (an upper age limit's first
    allowed day, said beside a refusal): the day after the 29 February rule's last birth with one year more."""
    day = birthday(on, -(years + 1))
    while completed_years(day, on) > years:  # at most two steps: the 29 February rule moves a birthday by a day
        day += timedelta(days=1)
    while completed_years(day - timedelta(days=1), on) <= years:
        day -= timedelta(days=1)
    return day
