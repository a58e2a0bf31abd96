"""The donor's oldest date of birth is judged by the one age of core.ages: "over 120 years old" means more than
120 completed years, and the first allowed birth the refusal names is exactly the boundary (29 February too)."""
from __future__ import annotations

from datetime import date, timedelta
from unittest import mock

import pytest

from mscbatch.core.ages import completed_years, earliest_birth
from mscbatch.donors import validation
from tests.integration.test_donors import details


def _days(start: date, end: date):
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


def test_the_earliest_birth_is_the_boundary_on_every_day_of_a_leap_cycle() -> None:
    for on in _days(date(2023, 1, 1), date(2025, 3, 31)):
        first = earliest_birth(on, 120)
        assert completed_years(first, on) <= 120 < completed_years(first - timedelta(days=1), on), on


@pytest.mark.parametrize("today", [date(2026, 12, 6), date(2024, 2, 29), date(2025, 3, 1), date(2028, 2, 28)])
def test_a_donor_of_120_completed_years_is_accepted_and_one_day_older_refused(app, today: date) -> None:
    first = earliest_birth(today, validation.MAX_AGE_YEARS)
    with mock.patch.object(validation, "site_today", return_value=today):
        accepted = validation.details_problems(details("adipose_at_don", date_of_birth=first))
        refused = validation.details_problems(details("adipose_at_don", date_of_birth=first - timedelta(days=1)))
    assert "date_of_birth" not in accepted, accepted  # 120 years old: not "over 120"
    assert completed_years(first, today) == 120
    message = " ".join(refused["date_of_birth"])
    assert "over 120 years old" in message and f"born on {first} or later" in message, message
