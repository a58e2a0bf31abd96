"""Session 37: lost cells do not undo doublings (a negative PD counts as 0 in the cumulative PD), a small count is
never "0 x10^6", and a small loss never reads "PD -0.00"."""
from __future__ import annotations

from decimal import Decimal

from mscbatch.core.culture import (
    CultureLimits,
    PassageCount,
    check_culture_limits,
    cumulative_population_doublings,
    format_cells,
    format_pd,
    population_doublings,
)

M = 10**6


def test_a_negative_pd_counts_as_zero_in_the_cumulative_pd() -> None:
    counts = [PassageCount(0, 1000, 1000 * M),  # PD 19.93
              PassageCount(1, 1000 * M, 1 * M),  # PD -9.97: lost, not younger
              PassageCount(2, 1 * M, 1000 * M)]  # PD 9.97
    assert population_doublings(1000 * M, 1 * M) == Decimal("-9.97")
    assert cumulative_population_doublings(counts[:2]) == Decimal("19.93")
    assert cumulative_population_doublings(counts) == Decimal("29.90")  # 19.93 when the loss was summed
    limits = CultureLimits(max_passage=5, max_cumulative_pd=Decimal("25"))
    assert check_culture_limits(2, cumulative_population_doublings(counts), limits).refusals == (
        "cumulative population doublings 29.90 exceed the product limit 25",)


def test_a_small_count_keeps_two_significant_figures() -> None:
    assert format_cells(4000) == "0.004 x10^6"
    assert format_cells(1000) == "0.001 x10^6"
    assert format_cells(1234) == "0.0012 x10^6"
    assert format_cells(1) == "0.000001 x10^6"
    assert format_cells(0) == "0 x10^6"
    assert format_cells(12_345) == "0.01 x10^6"  # from 0.01 x10^6 on: 2 decimals, as before
    assert format_cells(125 * M) == "125 x10^6" and format_cells(12_500_000) == "12.5 x10^6"


def test_a_small_loss_never_reads_minus_zero() -> None:
    assert format_pd(5 * M, 4_990_000) == "-0.0029"
    assert format_pd(5 * M, 5_010_000) == "0.0029"
    assert format_pd(12, 1) == "-3.58" and format_pd(5, 5) == "0.00"
    assert str(population_doublings(5 * M, 4_990_000)) == "0.00"  # the stored 2 decimals: no "-0.00"
