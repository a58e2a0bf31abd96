"""The DMSO limit per kg per day (DOMAIN.md 6) is held over any 24 HOURS, not the calendar day: the pure dose
calculation adds the DMSO the patient already received in the 24 hours before the infusion (DmsoGiven, grams) to the
course's, refuses the sum when it is not below the limit, and says both parts in plain words, each start with its
day when it is not today ("yesterday 23:50")."""
from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from mscbatch.core.dosing import (
    DmsoGiven,
    DoseRefused,
    dmso_grams,
    dmso_window_refusal,
    dmso_window_words,
    dose_at_new_weight,
    start_words,
    stored_dmso_window_words,
    window_end_after,
)
from tests.unit.test_dosing import bag as candidate
from tests.unit.test_dosing import dose, refused

LIMIT = Decimal(1)
PARIS = ZoneInfo("Europe/Paris")


def _bags() -> list:  # type: ignore[type-arg]
    """62.5 kg at 2 x10^6/kg from 50 x10^6 bags of 200 mL at 10 % DMSO: 2 whole + 100 mL, 500 mL = 55 g = 0.88 g/kg."""
    return [candidate(f"B{i}", 50, 200, days=i) for i in range(1, 5)]


def test_dmso_grams_is_volume_times_percent_times_density() -> None:
    assert dmso_grams(Decimal(25), Decimal(10), Decimal("1.10")) == Decimal("2.75")  # DOMAIN.md 6's example


def test_the_course_alone_below_the_limit_is_refused_once_the_dmso_of_the_last_24_hours_is_added() -> None:
    assert dose(_bags()).dmso_g == Decimal(55)  # 0.88 g/kg: allowed with nothing given in the last 24 hours
    error = refused(_bags(), dmso_given=DmsoGiven(Decimal(22), ("yesterday 23:50",),
                                                  last_start=datetime(2026, 12, 4, 23, 50, tzinfo=PARIS)))
    assert error.code == "dmso_limit"
    assert error.reason == ("DMSO would be 77.00 g in 24 hours: 22.00 g already given in the last 24 hours (started "
                            "yesterday 23:50) + 55.00 g in this course = 1.232 g/kg, not below the limit of 1 g/kg/day")
    # planning it later helps (the course alone is below the limit): the advice says from when nothing counts
    assert error.later == ("Plan this course later: DMSO counts for 24 hours from the start of its infusion, so from "
                           "2026-12-05 23:50 none of the 22.00 g already given counts")


def test_no_advice_to_plan_later_when_the_course_alone_is_not_below_the_limit() -> None:
    strong = [candidate(f"B{i}", 50, 200, days=i, dmso_percent=Decimal(12)) for i in range(1, 5)]  # 66 g alone
    error = refused(strong, dmso_given=DmsoGiven(Decimal(1), ("09:12",),
                                                 last_start=datetime(2026, 12, 5, 9, 12, tzinfo=PARIS)))
    assert error.code == "dmso_limit" and error.later is None  # 1.056 g/kg alone: later is no better


def test_the_sum_exactly_at_the_limit_is_refused_and_just_below_is_allowed() -> None:
    at_limit = refused(_bags(), dmso_given=DmsoGiven(Decimal("7.5"), ("08:00", "11:30")))  # 62.5 g = 1.000 g/kg
    assert ("7.50 g already given in the last 24 hours (started 08:00 and 11:30) + 55.00 g in this course = "
            "1.000 g/kg, not below") in at_limit.reason
    until = datetime(2026, 12, 6, 23, 59, tzinfo=PARIS)
    allocation = dose(_bags(), dmso_given=DmsoGiven(Decimal("7.49"), ("08:00",), ("2026-12-06 08:00",), until,
                                                    "in the 24 hours before 2026-12-06 23:59"))
    assert allocation.dmso_given_g == Decimal("7.49") and allocation.dmso_given_at == ("08:00",)
    assert allocation.dmso_given_dated == ("2026-12-06 08:00",) and allocation.dmso_window_end == until
    assert allocation.dmso_g == Decimal(55) and allocation.dmso_g_per_kg == Decimal("0.8800")  # the course's own
    assert allocation.dmso_window_words == ("55.00 g + 7.49 g already given in the 24 hours before 2026-12-06 23:59 "
                                            "(started 08:00) = 0.999 g/kg (limit 1 g/kg/day)")


def test_nothing_given_keeps_the_course_alone_and_its_words() -> None:
    allocation = dose(_bags(), dmso_given=DmsoGiven())
    assert allocation.dmso_given_g == 0 and allocation.dmso_given_at == ()
    assert allocation.dmso_window_words is None  # the page shows the course's line alone
    assert dose(_bags()).dmso_window_words is None


def test_the_refusal_and_the_words_as_pure_functions() -> None:
    assert dmso_window_refusal(Decimal(55), DmsoGiven(Decimal(7)), Decimal("62.5"), LIMIT) is None
    assert dmso_window_refusal(Decimal(55), DmsoGiven(Decimal(8)), Decimal("62.5"), LIMIT) == (
        "DMSO would be 63.00 g in 24 hours: 8.00 g already given in the last 24 hours + 55.00 g in this course = "
        "1.008 g/kg, not below the limit of 1 g/kg/day")
    assert dmso_window_refusal(Decimal(63), DmsoGiven(), Decimal("62.5"), LIMIT) == (
        "DMSO would be 63.00 g, 1.008 g/kg, not below the limit of 1 g/kg/day")
    assert dmso_window_words(Decimal("2.75"), Decimal(0), Decimal("62.5"), LIMIT) is None
    assert dmso_window_words(Decimal("2.75"), Decimal("1.10"), Decimal("62.5"), LIMIT) == (
        "2.75 g + 1.10 g already given in the last 24 hours = 0.062 g/kg (limit 1 g/kg/day)")  # 0.0616, rounded up


def test_a_start_is_written_with_its_day_unless_it_is_today() -> None:
    today = date(2026, 12, 5)
    assert start_words(datetime(2026, 12, 5, 9, 12, tzinfo=PARIS), today) == "09:12"
    assert start_words(datetime(2026, 12, 4, 23, 50, tzinfo=PARIS), today) == "yesterday 23:50"
    assert start_words(datetime(2026, 12, 3, 23, 50, tzinfo=PARIS), today) == "2026-12-03 23:50"
    assert start_words(datetime(2026, 12, 6, 0, 10, tzinfo=PARIS), today) == "2026-12-06 00:10"


def test_24_hours_are_elapsed_hours_across_a_change_of_clock() -> None:
    """Summer time starts on 2026-03-29 at 02:00 in Paris: 24 hours after 03-28 10:00 is 03-29 11:00 on the clock."""
    assert f"{window_end_after(datetime(2026, 3, 28, 10, 0, tzinfo=PARIS)):%Y-%m-%d %H:%M}" == "2026-03-29 11:00"


@pytest.mark.parametrize("grams", [Decimal(-1), Decimal("NaN"), Decimal("Infinity")])
def test_an_unreadable_amount_already_given_refuses(grams: Decimal) -> None:
    with pytest.raises(DoseRefused) as info:
        dose(_bags(), dmso_given=DmsoGiven(grams))
    assert info.value.code == "dmso_given_invalid"


def _signed(allocation) -> dict:  # type: ignore[no-untyped-def, type-arg]
    from mscbatch.patients.inventory import allocation_data

    return json.loads(json.dumps(allocation_data(allocation)))


def test_the_signed_calculation_keeps_the_window_it_was_judged_on_for_the_sheet_and_a_newer_weight() -> None:
    until = datetime(2026, 12, 5, 23, 59, tzinfo=PARIS)
    calculation = _signed(dose(_bags(), dmso_given=DmsoGiven(
        Decimal("5.5"), ("yesterday 09:12",), ("2026-12-04 09:12",), until,
        "in the 24 hours before 2026-12-05 23:59")))
    assert calculation["dmso_given_g"] == "5.5" and calculation["dmso_given_dated"] == ["2026-12-04 09:12"]
    assert calculation["dmso_window_end"] == "2026-12-05T23:59:00+01:00"
    # read later: the window's end and each start with its day, never "yesterday"
    assert stored_dmso_window_words(calculation) == (
        "55.00 g + 5.50 g already given in the 24 hours before 2026-12-05 23:59 (started 2026-12-04 09:12) = "
        "0.968 g/kg (limit 1 g/kg/day)")
    assert dose_at_new_weight(calculation, Decimal("62.5")) == []
    # 60 kg: the course alone is 0.917 g/kg (below), with the 5.5 g given before it 1.0083 g/kg (not below: written up)
    assert dose_at_new_weight(dict(calculation, dose_level_cells_per_kg=str(Decimal(125_000_000) / Decimal(60))),
                              Decimal("60")) == [
        "DMSO would be 1.009 g/kg (5.50 g already given in the 24 hours before it + 55.00 g in this course), not "
        "below the limit of 1 g/kg"]
    nothing = _signed(dose(_bags(), dmso_given=DmsoGiven(until=until)))
    assert nothing["dmso_given_g"] == "0" and stored_dmso_window_words(nothing) is None
    older = {k: v for k, v in calculation.items() if not k.startswith("dmso_")}  # signed before the DMSO given was
    older.update(dmso_g=calculation["dmso_g"], dmso_g_per_kg=calculation["dmso_g_per_kg"])
    assert stored_dmso_window_words(older) is None
    assert dose_at_new_weight(dict(older, dose_level_cells_per_kg=str(Decimal(125_000_000) / Decimal(60))),
                              Decimal("60")) == []


def test_the_refusal_names_what_is_judged_with_what_was_given() -> None:
    """For a check of one bag (the bedside), the part judged is named so."""
    assert dmso_window_refusal(Decimal(22), DmsoGiven(Decimal(55), ("yesterday 23:50",)), Decimal("62.5"), LIMIT,
                               part="in this bag") == (
        "DMSO would be 77.00 g in 24 hours: 55.00 g already given in the last 24 hours (started yesterday 23:50) + "
        "22.00 g in this bag = 1.232 g/kg, not below the limit of 1 g/kg/day")
