"""Population doublings, harvest and cryopreservation arithmetic, limits and expiry."""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from mscbatch.core.culture import (
    BagPlan,
    CultureError,
    CultureLimits,
    PassageCount,
    check_culture_limits,
    check_viability_percent,
    cumulative_population_doublings,
    doubling_time_hours,
    expiry_at,
    format_cells,
    plan_cryopreservation,
    population_doublings,
    viable_cells,
)

PARIS = ZoneInfo("Europe/Paris")
LIMITS = CultureLimits(max_passage=5, max_cumulative_pd=Decimal("25"), warn_passage=4,
                       warn_cumulative_pd=Decimal("20"))


def test_seeding_1e6_and_harvesting_8e6_is_three_doublings() -> None:
    assert population_doublings(1_000_000, 8_000_000) == Decimal("3.00")


def test_population_doublings_are_rounded_to_two_decimals() -> None:
    # log2(3) = 1.58496...
    assert population_doublings(1_000_000, 3_000_000) == Decimal("1.58")
    # log2(5) = 2.32193...
    assert population_doublings(Decimal("2E5"), 1_000_000) == Decimal("2.32")


def test_losing_cells_gives_negative_doublings() -> None:
    assert population_doublings(4_000_000, 1_000_000) == Decimal("-2.00")


def test_cumulative_doublings_over_p0_to_p3_add_up() -> None:
    passages = [
        PassageCount(0, 500_000, 8_000_000),        # 4
        PassageCount(1, 1_000_000, 16_000_000),     # 4
        PassageCount(2, 2_000_000, 6_000_000),      # log2(3) = 1.58496
        PassageCount(3, 1_000_000, 5_000_000),      # log2(5) = 2.32193
    ]
    # 4 + 4 + 1.58496 + 2.32193 = 11.90689 -> 11.91 (rounded once, not 11.90 from rounded parts)
    assert cumulative_population_doublings(passages) == Decimal("11.91")


def test_cumulative_doublings_refuse_a_missing_passage() -> None:
    with pytest.raises(CultureError, match="P0, P2"):
        cumulative_population_doublings([PassageCount(0, 1, 2), PassageCount(2, 1, 2)])


@pytest.mark.parametrize(("seeded", "harvested", "name"), [
    (0, 1_000_000, "seeded_cells"), (-5, 1_000_000, "seeded_cells"), (1_000_000, 0, "harvested_cells"),
])
def test_seeded_and_harvested_counts_must_be_positive(seeded: int, harvested: int, name: str) -> None:
    with pytest.raises(CultureError, match=f"{name} must be greater than 0"):
        population_doublings(seeded, harvested)


def test_float_counts_are_refused() -> None:
    with pytest.raises(CultureError, match="not float"):
        population_doublings(1e6, 8e6)  # type: ignore[arg-type]


def test_doubling_time_is_days_times_24_over_doublings() -> None:
    assert doubling_time_hours(PassageCount(1, 1_000_000, 8_000_000, Decimal("6"))) == Decimal("48.0")
    assert doubling_time_hours(PassageCount(1, 1_000_000, 8_000_000)) is None


def test_within_limits_there_is_nothing_to_say() -> None:
    check = check_culture_limits(3, Decimal("12.5"), LIMITS)
    assert check.allowed and check.warnings == () and check.refusals == ()


def test_approaching_the_limits_warns() -> None:
    check = check_culture_limits(4, Decimal("20.00"), LIMITS)
    assert check.allowed
    assert len(check.warnings) == 2
    assert "P4" in check.warnings[0] and "20.00" in check.warnings[1]


def test_exceeding_the_passage_or_pd_limit_refuses() -> None:
    check = check_culture_limits(6, Decimal("25.01"), LIMITS)
    assert not check.allowed
    assert check.refusals == (
        "passage P6 is beyond the product limit of P5",
        "cumulative population doublings 25.01 exceed the product limit 25",
    )


@pytest.mark.parametrize("viability", [Decimal("-0.1"), Decimal("100.1"), Decimal("NaN")])
def test_viability_must_be_between_0_and_100_percent(viability: Decimal) -> None:
    with pytest.raises(CultureError, match="between 0 and 100"):
        check_viability_percent(viability)


def test_viable_cells_are_total_times_viability_rounded_down() -> None:
    assert viable_cells(200_000_000, Decimal("92.5")) == 185_000_000
    assert viable_cells(3, Decimal("50")) == 1


def test_format_cells_writes_millions() -> None:
    assert format_cells(125_000_000) == "125 x10^6"
    assert format_cells(Decimal("1.5E6")) == "1.5 x10^6"


def test_bags_within_the_harvest_are_planned_with_their_dmso() -> None:
    bags = [BagPlan(Decimal("25"), 2_000_000, Decimal("10"))] * 3
    plan = plan_cryopreservation(200_000_000, 185_000_000, bags)
    assert plan.bag_cells == (Decimal(50_000_000),) * 3
    assert plan.total_bag_cells == 150_000_000 and plan.remaining_cells == 35_000_000
    assert plan.bag_dmso_ml[0] == Decimal("2.5") and plan.bag_dmso_g[0] == Decimal("2.75")


def test_bags_exceeding_the_harvest_are_refused_with_the_numbers() -> None:
    bags = [BagPlan(Decimal("25"), 2_000_000, Decimal("10"))] * 4
    with pytest.raises(CultureError) as caught:
        plan_cryopreservation(200_000_000, 185_000_000, bags)
    assert str(caught.value) == (
        "the 4 bags would hold 200 x10^6 viable cells but the harvest has only 185 x10^6 viable cells "
        "(15 x10^6 too many)")


def test_the_same_bags_fit_when_counted_against_total_cells() -> None:
    bags = [BagPlan(Decimal("25"), 2_000_000, Decimal("10"))] * 4
    assert plan_cryopreservation(200_000_000, 185_000_000, bags, basis="total").remaining_cells == 0


def test_viable_cells_cannot_exceed_total_cells() -> None:
    with pytest.raises(CultureError, match="cannot exceed total"):
        plan_cryopreservation(100, 101, [BagPlan(Decimal("1"), 1, Decimal("10"))])


def test_a_bag_with_impossible_dmso_is_refused() -> None:
    with pytest.raises(CultureError, match="bag 2: DMSO must be between 0 and 100"):
        plan_cryopreservation(10**9, 10**9, [BagPlan(Decimal("1"), 1, Decimal("10")),
                                             BagPlan(Decimal("1"), 1, Decimal("110"))])


def test_expiry_is_start_plus_shelf_life_in_the_start_zone() -> None:
    frozen_at = datetime(2025, 1, 10, 14, 30, tzinfo=PARIS)
    assert expiry_at(frozen_at, timedelta(days=365)) == datetime(2026, 1, 10, 14, 30, tzinfo=PARIS)
    assert expiry_at(frozen_at, timedelta(days=365)).tzinfo is PARIS


def test_expiry_counts_elapsed_time_across_a_daylight_saving_change() -> None:
    # Paris moved to summer time on 2025-03-30 02:00: 48 elapsed hours end at 15:00 local, not 14:00.
    start = datetime(2025, 3, 29, 14, 0, tzinfo=PARIS)
    assert expiry_at(start, timedelta(hours=48)).replace(tzinfo=None) == datetime(2025, 3, 31, 15, 0)


def test_expiry_refuses_a_naive_start_time() -> None:
    with pytest.raises(CultureError, match="time-zone-aware"):
        expiry_at(datetime(2025, 1, 10, 14, 30), timedelta(days=1))
