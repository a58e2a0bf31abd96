"""Review 14 of lots: the lot page's cumulative PD plot had its axis from 0 to the limit, so a cumulative PD below
0 (fewer cells harvested than seeded, as at a marrow P0 where only a part of the cells seeded adhere: PD =
log2(harvested / seeded) is then negative) was drawn below the 0 of the axis, over the passage labels, or out of
the figure altogether. The axis now reaches down to the lowest cumulative PD."""
from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

from mscbatch.core.culture import CultureLimits
from mscbatch.lots.record import MARGIN, PLOT_HEIGHT, build_plot

PRODUCT = SimpleNamespace(culture_limits=CultureLimits(max_passage=5, max_cumulative_pd=Decimal(25)))


def _passages(*cumulative: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(label=f"P{n}", cumulative_pd=Decimal(value), viability_percent=Decimal(90))
            for n, value in enumerate(cumulative)]


def test_a_negative_cumulative_pd_is_drawn_inside_the_plot_and_above_its_axis_bottom():
    plot = build_plot(_passages("-12.5", "-9.3", "-6.1"), PRODUCT)  # 50 x10^6 marrow cells seeded, ~0.01 % adhere
    bottom_axis = PLOT_HEIGHT - MARGIN
    for _x, y, label, _value in plot.pd_points:
        assert MARGIN <= y <= bottom_axis, (label, y)
    ys = [y for _x, y, _label, _value in plot.pd_points]
    assert ys[0] > ys[1] > ys[2]  # growing cumulative PD goes up
    labels = [label for _y, label in plot.pd_ticks]
    assert labels[0].startswith("-") and "-0" not in labels
    assert plot.pd_limit_y is not None and MARGIN <= plot.pd_limit_y < ys[2]


def test_a_positive_cumulative_pd_keeps_its_axis_from_0():
    plot = build_plot(_passages("3", "6.5", "10"), PRODUCT)
    assert plot.pd_ticks[0] == (PLOT_HEIGHT - MARGIN, "0")
    assert plot.pd_points[0][1] < PLOT_HEIGHT - MARGIN
