"""One age for donors and patients (core.ages), judged on the exact boundary days of a 29 February birthday
(seeds 001/002: patients "> 18 and < 70"; seed 002: familial marrow donors "18 to 65 years")."""
from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from mscbatch.core import ages, eligibility, enrolment
from mscbatch.core.eligibility import evaluate as evaluate_donor
from mscbatch.core.enrolment import ELIGIBLE, MET, NOT_ELIGIBLE, NOT_MET
from mscbatch.core.enrolment import evaluate as evaluate_patient
from tests.unit.test_eligibility import MARROW, eligible_facts
from tests.unit.test_enrolment import SLE, SSC, good_values


def test_donors_and_patients_are_aged_by_one_function() -> None:
    assert eligibility.age_in_years is ages.completed_years
    assert enrolment.completed_years is ages.completed_years


@pytest.mark.parametrize(("on", "age"), [
    (date(2024, 2, 28), 67), (date(2024, 2, 29), 68), (date(2024, 3, 1), 68),   # a leap year: the day itself
    (date(2026, 2, 28), 69), (date(2026, 3, 1), 70), (date(2026, 3, 2), 70),    # a common year: 1 March
])
def test_someone_born_on_29_february_ages_on_1_march_in_common_years(on: date, age: int) -> None:
    assert ages.completed_years(date(1956, 2, 29), on) == age


@pytest.mark.parametrize(("on", "status", "criterion"), [
    (date(2026, 2, 27), ELIGIBLE, MET),
    (date(2026, 2, 28), ELIGIBLE, MET),          # still 69: under 70
    (date(2026, 3, 1), NOT_ELIGIBLE, NOT_MET),   # the 70th birthday of a 29 February birth: no longer under 70
])
def test_a_patient_born_29_february_is_under_70_until_the_last_day_of_february(
        on: date, status: str, criterion: str) -> None:
    for protocol in (SLE, SSC):
        decision = evaluate_patient(protocol, good_values(protocol), date(1956, 2, 29), on)
        assert (decision.status, decision.results[0].status) == (status, criterion), protocol.id
        assert decision.results[0].value == ages.completed_years(date(1956, 2, 29), on)


@pytest.mark.parametrize(("on", "criterion"), [
    (date(2026, 2, 28), NOT_MET),   # 17
    (date(2026, 3, 1), NOT_MET),    # the 18th birthday: 18, not over 18
    (date(2026, 3, 2), MET),        # over 18 from the day after
])
def test_a_patient_born_29_february_is_over_18_from_2_march_of_a_common_year(on: date, criterion: str) -> None:
    assert evaluate_patient(SLE, good_values(SLE), date(2008, 2, 29), on).results[0].status == criterion


@pytest.mark.parametrize(("born", "on", "status", "age"), [
    (date(1960, 2, 29), date(2026, 2, 28), "eligible", "65"),    # 65 until the day before the 66th birthday
    (date(1960, 2, 29), date(2026, 3, 1), "ineligible", "66"),   # the 66th birthday, 1 March of a common year
    (date(2008, 2, 29), date(2026, 2, 28), "ineligible", "17"),  # not 18 a day early
    (date(2008, 2, 29), date(2026, 3, 1), "eligible", "18"),
])
def test_a_marrow_donor_born_29_february_is_aged_on_the_collection_day_as_a_patient_would_be(
        born: date, on: date, status: str, age: str) -> None:
    facts = replace(eligible_facts(MARROW, date_of_birth=born), collection_date=on)
    facts = replace(facts, results=tuple(replace(r, sample_date=on) for r in facts.results))
    decision = evaluate_donor(MARROW, facts)
    assert decision.status == status, decision.blocking_reasons
    assert decision.reason_for("limit.age").values["value"] == age == str(ages.completed_years(born, on))
