"""The DMSO limit is per kg PER DAY (DOMAIN.md 6): the pure dose calculation adds the DMSO the patient already
received on the planned day (DmsoGiven, grams) to the course's, refuses the sum when it is not below the limit, and
says both parts in plain words."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from mscbatch.core.dosing import (
    DmsoGiven,
    DoseRefused,
    dmso_day_refusal,
    dmso_day_words,
    dmso_grams,
    dose_at_new_weight,
    stored_dmso_day_words,
)
from tests.unit.test_dosing import bag as candidate
from tests.unit.test_dosing import dose, refused

LIMIT = Decimal(1)


def _bags() -> list:  # type: ignore[type-arg]
    """62.5 kg at 2 x10^6/kg from 50 x10^6 bags of 200 mL at 10 % DMSO: 2 whole + 100 mL, 500 mL = 55 g = 0.88 g/kg."""
    return [candidate(f"B{i}", 50, 200, days=i) for i in range(1, 5)]


def test_dmso_grams_is_volume_times_percent_times_density() -> None:
    assert dmso_grams(Decimal(25), Decimal(10), Decimal("1.10")) == Decimal("2.75")  # DOMAIN.md 6's example


def test_the_course_alone_below_the_limit_is_refused_once_the_days_dmso_is_added() -> None:
    assert dose(_bags()).dmso_g == Decimal(55)  # 0.88 g/kg: allowed with nothing given today
    error = refused(_bags(), dmso_given=DmsoGiven(Decimal(22), ("09:12",)))
    assert error.code == "dmso_limit"
    assert error.reason == ("DMSO would be 77.00 g today: 22.00 g already given at 09:12 + 55.00 g in this course = "
                            "1.232 g/kg, not below the limit of 1 g/kg/day")


def test_the_sum_exactly_at_the_limit_is_refused_and_just_below_is_allowed() -> None:
    at_limit = refused(_bags(), dmso_given=DmsoGiven(Decimal("7.5"), ("08:00", "11:30")))  # 62.5 g = 1.000 g/kg
    assert "7.50 g already given at 08:00 and 11:30 + 55.00 g in this course = 1.000 g/kg, not below" in at_limit.reason
    allocation = dose(_bags(), dmso_given=DmsoGiven(Decimal("7.49"), ("08:00",)))
    assert allocation.dmso_given_today_g == Decimal("7.49") and allocation.dmso_given_at == ("08:00",)
    assert allocation.dmso_g == Decimal(55) and allocation.dmso_g_per_kg == Decimal("0.8800")  # the course's own
    assert allocation.dmso_day_words == ("55.00 g + 7.49 g already given today at 08:00 = 0.999 g/kg "
                                         "(limit 1 g/kg/day)")


def test_nothing_given_keeps_the_course_alone_and_its_words() -> None:
    allocation = dose(_bags(), dmso_given=DmsoGiven())
    assert allocation.dmso_given_today_g == 0 and allocation.dmso_given_on is None
    assert allocation.dmso_day_words is None  # the page shows the course's line alone
    assert dose(_bags()).dmso_day_words is None


def test_the_refusal_and_the_words_as_pure_functions() -> None:
    assert dmso_day_refusal(Decimal(55), DmsoGiven(Decimal(7)), Decimal("62.5"), LIMIT) is None
    assert dmso_day_refusal(Decimal(55), DmsoGiven(Decimal(8)), Decimal("62.5"), LIMIT) == (
        "DMSO would be 63.00 g today: 8.00 g already given + 55.00 g in this course = 1.008 g/kg, not below the limit "
        "of 1 g/kg/day")
    assert dmso_day_refusal(Decimal(63), DmsoGiven(), Decimal("62.5"), LIMIT) == (
        "DMSO would be 63.00 g, 1.008 g/kg, not below the limit of 1 g/kg/day")
    assert dmso_day_words(Decimal("2.75"), Decimal(0), Decimal("62.5"), LIMIT) is None
    assert dmso_day_words(Decimal("2.75"), Decimal("1.10"), Decimal("62.5"), LIMIT) == (
        "2.75 g + 1.10 g already given today = 0.061 g/kg (limit 1 g/kg/day)")  # 0.0616, written down: allowed


@pytest.mark.parametrize("grams", [Decimal(-1), Decimal("NaN"), Decimal("Infinity")])
def test_an_unreadable_amount_already_given_refuses(grams: Decimal) -> None:
    with pytest.raises(DoseRefused) as info:
        dose(_bags(), dmso_given=DmsoGiven(grams))
    assert info.value.code == "dmso_given_invalid"


def _signed(allocation) -> dict:  # type: ignore[no-untyped-def, type-arg]
    from mscbatch.patients.inventory import allocation_data

    return json.loads(json.dumps(allocation_data(allocation)))


def test_the_signed_calculation_keeps_the_days_dmso_for_the_sheet_and_a_newer_weight() -> None:
    calculation = _signed(dose(_bags(), dmso_given=DmsoGiven(Decimal("5.5"), ("09:12",))))
    assert calculation["dmso_given_today_g"] == "5.5" and calculation["dmso_given_at"] == ["09:12"]
    assert stored_dmso_day_words(calculation) == (
        f"55.00 g + 5.50 g already given on {calculation['dmso_given_on']} at 09:12 = 0.968 g/kg (limit 1 g/kg/day)")
    assert dose_at_new_weight(calculation, Decimal("62.5")) == []
    # 60 kg: the course alone is 0.917 g/kg (below), with the 5.5 g given that day 1.0083 g/kg (not below: written up)
    assert dose_at_new_weight(dict(calculation, dose_level_cells_per_kg=str(Decimal(125_000_000) / Decimal(60))),
                              Decimal("60")) == [
        "DMSO would be 1.009 g/kg (5.50 g already given that day + 55.00 g in this course), not below the limit of "
        "1 g/kg"]
    older = {k: v for k, v in calculation.items() if not k.startswith("dmso_given")}  # signed before this change
    assert stored_dmso_day_words(older) is None
    assert dose_at_new_weight(dict(older, dose_level_cells_per_kg=str(Decimal(125_000_000) / Decimal(60))),
                              Decimal("60")) == []


def test_the_refusal_names_what_is_judged_with_what_was_given() -> None:
    """For a check of one bag (the bedside), the part judged is named so."""
    assert dmso_day_refusal(Decimal(22), DmsoGiven(Decimal(55), ("09:12",)), Decimal("62.5"), LIMIT,
                            part="in this bag") == (
        "DMSO would be 77.00 g today: 55.00 g already given at 09:12 + 22.00 g in this bag = 1.232 g/kg, not below "
        "the limit of 1 g/kg/day")
