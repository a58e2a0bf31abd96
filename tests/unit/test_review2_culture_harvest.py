"""core.culture.check_harvest_count: the harvest against the last passage's count, at its edges."""
from __future__ import annotations

from decimal import Decimal

import pytest

from mscbatch.core.culture import CultureError, check_harvest_count

M = 10**6


def test_a_harvest_up_to_the_count_plus_ten_percent_is_plausible() -> None:
    for total in (15 * M, 30 * M, 33 * M):  # half the count, the count, the count + 10 %
        check = check_harvest_count(total, 30 * M, 3)
        assert check.refusal is None and check.shortfall is None, total


def test_one_cell_above_the_tolerance_is_refused_with_both_numbers() -> None:
    check = check_harvest_count(33 * M + 1, 30 * M, 3)
    assert check.refusal and "30 x10^6 cells counted at the end of the last passage P3" in check.refusal
    assert "33 x10^6" in check.refusal and check.shortfall is None


def test_typing_errors_of_a_factor_ten_or_a_thousand_are_caught_both_ways() -> None:
    assert check_harvest_count(300 * M, 30 * M, 2).refusal
    assert check_harvest_count(30_000 * M, 30 * M, 2).refusal
    assert check_harvest_count(3 * M, 30 * M, 2).shortfall
    assert check_harvest_count(Decimal(30_000), 30 * M, 2).shortfall


def test_below_half_is_a_shortfall_not_a_refusal() -> None:
    check = check_harvest_count(15 * M - 1, 30 * M, 1)
    assert check.refusal is None and check.shortfall and "less than 50 % of the 30 x10^6 cells" in check.shortfall


def test_counts_must_be_positive_numbers() -> None:
    with pytest.raises(CultureError):
        check_harvest_count(0, 30 * M, 1)
    with pytest.raises(CultureError):
        check_harvest_count(30.0 * M, 30 * M, 1)  # type: ignore[arg-type]
