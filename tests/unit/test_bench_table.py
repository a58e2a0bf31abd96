"""bench/common.py's table rows: a bound of the issue is ok or OVER; a row shown for information has none."""
from __future__ import annotations

from bench.common import Row


def test_a_floor_and_a_ceiling_are_judged_and_an_information_row_is_not() -> None:
    floor = Row("sqlite", "load", "healthz", 40.0, 100.0, 0.5, unit="req/s", at_least=True)
    assert floor.ratio == 0.4 and not floor.within and floor.verdict == (">= 0.5", "OVER")
    ceiling = Row("sqlite", "bedside", "small", 1.2, 1.0, 1.5)
    assert ceiling.within and ceiling.verdict == ("<= 1.5", "ok")
    info = Row("sqlite", "load", "audited write", 40.0, 100.0, None, unit="req/s", at_least=True)
    assert info.within and info.verdict == ("-", "info")
